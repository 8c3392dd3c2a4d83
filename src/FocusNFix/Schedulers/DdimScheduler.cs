using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>
/// diffusers 0.27.2 DDIMScheduler: deterministic for eta = 0; prediction types epsilon, sample and
/// v_prediction; timestep spacing leading, trailing or linspace; optional clipping or dynamic thresholding.
/// </summary>
public sealed class DdimScheduler : SchedulerBase
{
    readonly float _finalAlphaCumprod;

    public DdimScheduler(JsonConfig config) : base(config)
    {
        PredictionType = Choice("prediction_type", "epsilon", "epsilon", "sample", "v_prediction");
        TimestepSpacing = Choice("timestep_spacing", "leading", "linspace", "leading", "trailing");
        StepsOffset = config.Int("steps_offset", 0);
        ClipSample = config.Bool("clip_sample", true);
        ClipSampleRange = config.Double("clip_sample_range", 1.0);
        Thresholding = config.Bool("thresholding", false);
        DynamicThresholdingRatio = config.Double("dynamic_thresholding_ratio", 0.995);
        SampleMaxValue = config.Double("sample_max_value", 1.0);
        _finalAlphaCumprod = config.Bool("set_alpha_to_one", true) ? 1f : Ac[0];
    }

    public override string ClassName => "DDIMScheduler";
    public string PredictionType { get; }
    public string TimestepSpacing { get; }
    public int StepsOffset { get; }
    public bool ClipSample { get; }
    public double ClipSampleRange { get; }
    public bool Thresholding { get; }
    public double DynamicThresholdingRatio { get; }
    public double SampleMaxValue { get; }
    /// <summary>DDIM's eta: 0 is deterministic DDIM, 1 matches DDPM's variance.</summary>
    public double Eta { get; set; }
    /// <summary>Recompute epsilon from the clipped x0 (diffusers' use_clipped_model_output).</summary>
    public bool UseClippedModelOutput { get; set; }

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckSteps(numInferenceSteps, NumTrainTimesteps);
        Timesteps = tensor(InferenceTimesteps(TimestepSpacing, NumTrainTimesteps, numInferenceSteps, StepsOffset)).DetachFromDisposeScope();
        NumInferenceSteps = numInferenceSteps;
    }

    /// <summary>The descending int64 timesteps DDIM and DDPM use for each spacing.</summary>
    internal static long[] InferenceTimesteps(string spacing, int numTrain, int n, int stepsOffset) => spacing switch
    {
        "linspace" => ScheduleMath.Linspace(0, numTrain - 1, n).Select(v => (long)ScheduleMath.Round(v)).Reverse().ToArray(),
        "leading" => Enumerable.Range(0, n).Select(i => (long)i * (numTrain / n) + stepsOffset).Reverse().ToArray(),
        "trailing" => ScheduleMath.Arange(numTrain, 0, -(double)numTrain / n).Select(v => (long)ScheduleMath.Round(v) - 1).ToArray(),
        _ => throw new ArgumentException(spacing),
    };

    public override SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, Generator? generator = null, Tensor? noise = null)
    {
        int n = RequireSteps();
        int t = TrainIndex(timestep);
        int prevT = t - NumTrainTimesteps / n;
        float aT = Ac[t];
        float aPrev = prevT >= 0 ? Ac[prevT] : _finalAlphaCumprod;
        float bT = 1f - aT;
        float sqrtA = MathF.Sqrt(aT), sqrtB = MathF.Sqrt(bT);

        using var scope = NewDisposeScope();
        Tensor x0, eps;
        switch (PredictionType)
        {
            case "epsilon":
                x0 = (sample - modelOutput * sqrtB) / sqrtA;
                eps = modelOutput;
                break;
            case "sample":
                x0 = modelOutput.alias();
                eps = (sample - x0 * sqrtA) / sqrtB;
                break;
            default: // v_prediction
                x0 = sample * sqrtA - modelOutput * sqrtB;
                eps = modelOutput * sqrtA + sample * sqrtB;
                break;
        }
        if (Thresholding) x0 = ThresholdSample(x0, DynamicThresholdingRatio, SampleMaxValue);
        else if (ClipSample) x0 = x0.clamp(-ClipSampleRange, ClipSampleRange);

        float bPrev = 1f - aPrev;
        float variance = bPrev / bT * (1f - aT / aPrev);
        float std = (float)Eta * MathF.Sqrt(variance);
        if (UseClippedModelOutput) eps = (sample - x0 * sqrtA) / sqrtB;
        var direction = eps * MathF.Sqrt(1f - aPrev - std * std);
        var prev = x0 * MathF.Sqrt(aPrev) + direction;
        if (Eta > 0)
        {
            if (noise is not null && generator is not null)
                throw new ArgumentException("DDIMScheduler.Step: pass either a generator or the variance noise, not both");
            var z = noise ?? ScheduleMath.Randn(modelOutput, generator, modelOutput.dtype);
            prev = prev + z * std;
        }
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) => AddNoiseByAlphas(originalSamples, noise, timesteps);
}
