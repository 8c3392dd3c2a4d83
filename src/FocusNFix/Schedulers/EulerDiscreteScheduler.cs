using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>
/// diffusers 0.27.2 EulerDiscreteScheduler (Karras et al. Algorithm 2). Timesteps are float32; the model
/// input is divided by sqrt(sigma^2 + 1). With s_churn = 0 (the default) it is deterministic: the noise it
/// draws each step, as diffusers does, only advances the generator.
/// </summary>
public sealed class EulerDiscreteScheduler : SigmaSchedulerBase
{
    public EulerDiscreteScheduler(JsonConfig config) : base(config)
    {
        PredictionType = Choice("prediction_type", "epsilon", "epsilon", "v_prediction", "sample", "original_sample");
        InterpolationType = Choice("interpolation_type", "linear", "linear", "log_linear");
        TimestepSpacing = Choice("timestep_spacing", "linspace", "linspace", "leading", "trailing");
        TimestepType = Choice("timestep_type", "discrete", "discrete", "continuous");
        UseKarrasSigmas = config.Bool("use_karras_sigmas", false);
        SigmaMin = config.DoubleOrNull("sigma_min");
        SigmaMax = config.DoubleOrNull("sigma_max");
        StepsOffset = config.Int("steps_offset", 0);
        if (config.Bool("rescale_betas_zero_snr", false)) PinLastAlphaCumprod();

        // Before SetTimesteps diffusers holds the full training schedule (init_noise_sigma reads it).
        var (train, _) = TrainSigmaTable();
        var sigmas = train.Reverse().Append(0f).ToArray();
        var ts = ScheduleMath.Linspace(0, NumTrainTimesteps - 1, NumTrainTimesteps).Reverse().Select(v => (float)v).ToArray();
        SetSchedule(sigmas, ContinuousV ? ContinuousTimesteps(sigmas[..^1]) : tensor(ts));
    }

    public override string ClassName => "EulerDiscreteScheduler";
    public string PredictionType { get; }
    public string InterpolationType { get; }
    public string TimestepSpacing { get; }
    public string TimestepType { get; }
    public bool UseKarrasSigmas { get; }
    public double? SigmaMin { get; }
    public double? SigmaMax { get; }
    public int StepsOffset { get; }
    /// <summary>Stochastic churn (Karras' S_churn); 0 keeps the sampler deterministic.</summary>
    public double SChurn { get; set; }
    public double STmin { get; set; }
    public double STmax { get; set; } = double.PositiveInfinity;
    public double SNoise { get; set; } = 1.0;

    bool ContinuousV => TimestepType == "continuous" && PredictionType == "v_prediction";

    static Tensor ContinuousTimesteps(float[] sigmas) => tensor(sigmas.Select(s => 0.25f * MathF.Log(s)).ToArray());

    public override double InitNoiseSigma => EulerInitNoiseSigma(TimestepSpacing);

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckSteps(numInferenceSteps, int.MaxValue);
        var timesteps = EulerTimesteps(TimestepSpacing, NumTrainTimesteps, numInferenceSteps, StepsOffset);
        var (train, logTrain) = TrainSigmaTable();
        double[] sigmas;
        if (InterpolationType == "linear")
        {
            var xp = Enumerable.Range(0, train.Length).Select(i => (double)i).ToArray();
            var fp = train.Select(v => (double)v).ToArray();
            sigmas = timesteps.Select(t => ScheduleMath.Interp(t, xp, fp)).ToArray();
        }
        else
        {
            // diffusers 0.27.2 spaces log sigmas over N + 1 points here (float32 torch.linspace), kept as is.
            sigmas = ScheduleMath.TorchLinspace(logTrain[^1], logTrain[0], numInferenceSteps + 1).Select(v => (double)ScheduleMath.TorchExp(v)).ToArray();
        }
        if (UseKarrasSigmas)
        {
            sigmas = ScheduleMath.KarrasSigmas(SigmaMin ?? sigmas[^1], SigmaMax ?? sigmas[0], numInferenceSteps);
            timesteps = sigmas.Select(s => ScheduleMath.SigmaToT(s, logTrain)).ToArray();
        }
        var sig32 = sigmas.Select(s => (float)s).ToArray();
        var ts = ContinuousV ? ContinuousTimesteps(sig32) : tensor(timesteps.Select(t => (float)t).ToArray());
        SetSchedule(sig32.Append(0f).ToArray(), ts);
        NumInferenceSteps = numInferenceSteps;
    }

    public override Tensor ScaleModelInput(Tensor sample, Tensor timestep) => ScaleBySigma(sample, timestep);
    public override Tensor ScaleModelInput(Tensor sample, Tensor timestep, int stepIndex) => ScaleBySigmaAt(sample, stepIndex);

    public override SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, Generator? generator = null, Tensor? noise = null)
    {
        if (!timestep.is_floating_point())
            throw new ArgumentException($"{ClassName}.Step: pass one of the scheduler's float timesteps, not an integer index");
        int i = CurrentIndex(timestep);
        float sigma = SigmaValues[i];
        double gamma = STmin <= sigma && sigma <= STmax ? Math.Min(SChurn / (SigmaValues.Length - 1), Math.Sqrt(2) - 1) : 0.0;

        using var scope = NewDisposeScope();
        var x = sample.to_type(ScalarType.Float32);
        // diffusers draws this noise every step; with gamma = 0 it only advances the generator.
        if (noise is null && (generator is not null || gamma > 0)) noise = ScheduleMath.Randn(modelOutput, generator, modelOutput.dtype);
        float sigmaHat = sigma * (float)(gamma + 1);
        if (gamma > 0) x = x + noise! * SNoise * MathF.Sqrt(sigmaHat * sigmaHat - sigma * sigma);

        Tensor x0 = PredictionType switch
        {
            "epsilon" => x - modelOutput * sigmaHat,
            "v_prediction" => modelOutput * (-sigma / MathF.Sqrt(sigma * sigma + 1f)) + x / (sigma * sigma + 1f),
            _ => modelOutput.alias(),
        };
        var derivative = (x - x0) / sigmaHat;
        float dt = SigmaValues[i + 1] - sigmaHat;
        var prev = (x + derivative * dt).to_type(modelOutput.dtype);
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        return (originalSamples + noise * SigmasFor(timesteps, originalSamples)).MoveToOuterDisposeScope();
    }
}
