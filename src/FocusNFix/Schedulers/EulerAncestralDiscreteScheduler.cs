using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>
/// diffusers 0.27.2 EulerAncestralDiscreteScheduler: an Euler step to sigma_down, then fresh noise scaled
/// by sigma_up. Stochastic at every step: the noise is <c>noise</c> when given, else drawn from the generator.
/// </summary>
public sealed class EulerAncestralDiscreteScheduler : SigmaSchedulerBase
{
    public EulerAncestralDiscreteScheduler(JsonConfig config) : base(config)
    {
        // diffusers accepts "sample" in the config but raises NotImplementedError on the first step.
        PredictionType = Choice("prediction_type", "epsilon", "epsilon", "v_prediction");
        TimestepSpacing = Choice("timestep_spacing", "linspace", "linspace", "leading", "trailing");
        StepsOffset = config.Int("steps_offset", 0);
        if (config.Bool("rescale_betas_zero_snr", false)) PinLastAlphaCumprod();

        var (train, _) = TrainSigmaTable();
        var ts = ScheduleMath.Linspace(0, NumTrainTimesteps - 1, NumTrainTimesteps).Reverse().Select(v => (float)v).ToArray();
        SetSchedule(train.Reverse().Append(0f).ToArray(), tensor(ts));
    }

    public override string ClassName => "EulerAncestralDiscreteScheduler";
    public string PredictionType { get; }
    public string TimestepSpacing { get; }
    public int StepsOffset { get; }

    public override double InitNoiseSigma => EulerInitNoiseSigma(TimestepSpacing);

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckSteps(numInferenceSteps, int.MaxValue);
        var timesteps = EulerTimesteps(TimestepSpacing, NumTrainTimesteps, numInferenceSteps, StepsOffset);
        var (train, _) = TrainSigmaTable();
        var xp = Enumerable.Range(0, train.Length).Select(i => (double)i).ToArray();
        var fp = train.Select(v => (double)v).ToArray();
        var sigmas = timesteps.Select(t => (float)ScheduleMath.Interp(t, xp, fp)).Append(0f).ToArray();
        SetSchedule(sigmas, tensor(timesteps.Select(t => (float)t).ToArray()));
        NumInferenceSteps = numInferenceSteps;
    }

    public override Tensor ScaleModelInput(Tensor sample, Tensor timestep) => ScaleBySigma(sample, timestep);
    public override Tensor ScaleModelInput(Tensor sample, Tensor timestep, int stepIndex) => ScaleBySigmaAt(sample, stepIndex);

    public override SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, Generator? generator = null, Tensor? noise = null)
    {
        if (!timestep.is_floating_point())
            throw new ArgumentException($"{ClassName}.Step: pass one of the scheduler's float timesteps, not an integer index");
        int i = CurrentIndex(timestep);
        float sigma = SigmaValues[i], sigmaTo = SigmaValues[i + 1];

        using var scope = NewDisposeScope();
        var x = sample.to_type(ScalarType.Float32);
        Tensor x0 = PredictionType == "epsilon"
            ? x - modelOutput * sigma
            : modelOutput * (-sigma / MathF.Sqrt(sigma * sigma + 1f)) + x / (sigma * sigma + 1f);

        float sigmaUp = MathF.Sqrt(sigmaTo * sigmaTo * (sigma * sigma - sigmaTo * sigmaTo) / (sigma * sigma));
        float sigmaDown = MathF.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
        var derivative = (x - x0) / sigma;
        var prev = x + derivative * (sigmaDown - sigma);
        var z = noise ?? ScheduleMath.Randn(modelOutput, generator, modelOutput.dtype);
        prev = (prev + z * sigmaUp).to_type(modelOutput.dtype);
        StepIndex = i + 1;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        return (originalSamples + noise * SigmasFor(timesteps, originalSamples)).MoveToOuterDisposeScope();
    }
}
