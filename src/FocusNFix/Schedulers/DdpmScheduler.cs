using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>
/// diffusers 0.27.2 DDPMScheduler (ancestral sampling). Stochastic at every step with t &gt; 0: the
/// variance noise is <c>noise</c> when given, else drawn from the generator.
/// </summary>
public sealed class DdpmScheduler : SchedulerBase
{
    public DdpmScheduler(JsonConfig config) : base(config, allowSigmoid: true)
    {
        PredictionType = Choice("prediction_type", "epsilon", "epsilon", "sample", "v_prediction");
        TimestepSpacing = Choice("timestep_spacing", "leading", "linspace", "leading", "trailing");
        VarianceType = Choice("variance_type", "fixed_small", "fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range");
        StepsOffset = config.Int("steps_offset", 0);
        ClipSample = config.Bool("clip_sample", true);
        ClipSampleRange = config.Double("clip_sample_range", 1.0);
        Thresholding = config.Bool("thresholding", false);
        DynamicThresholdingRatio = config.Double("dynamic_thresholding_ratio", 0.995);
        SampleMaxValue = config.Double("sample_max_value", 1.0);
    }

    public override string ClassName => "DDPMScheduler";
    public string PredictionType { get; }
    public string TimestepSpacing { get; }
    public string VarianceType { get; }
    public int StepsOffset { get; }
    public bool ClipSample { get; }
    public double ClipSampleRange { get; }
    public bool Thresholding { get; }
    public double DynamicThresholdingRatio { get; }
    public double SampleMaxValue { get; }

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckSteps(numInferenceSteps, NumTrainTimesteps);
        Timesteps = tensor(DdimScheduler.InferenceTimesteps(TimestepSpacing, NumTrainTimesteps, numInferenceSteps, StepsOffset)).DetachFromDisposeScope();
        NumInferenceSteps = numInferenceSteps;
    }

    public override SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, Generator? generator = null, Tensor? noise = null)
    {
        int t = TrainIndex(timestep);
        // Without SetTimesteps diffusers steps through every training timestep.
        int prevT = t - NumTrainTimesteps / (NumInferenceSteps ?? NumTrainTimesteps);

        using var scope = NewDisposeScope();
        Tensor? predictedVariance = null;
        if (modelOutput.shape[1] == sample.shape[1] * 2 && VarianceType is "learned" or "learned_range")
        {
            var parts = modelOutput.split(sample.shape[1], 1);
            modelOutput = parts[0];
            predictedVariance = parts[1];
        }

        float aT = Ac[t];
        float aPrev = prevT >= 0 ? Ac[prevT] : 1f;
        float bT = 1f - aT, bPrev = 1f - aPrev;
        float curAlpha = aT / aPrev, curBeta = 1f - curAlpha;
        float sqrtA = MathF.Sqrt(aT), sqrtB = MathF.Sqrt(bT);

        Tensor x0 = PredictionType switch
        {
            "epsilon" => (sample - modelOutput * sqrtB) / sqrtA,
            "sample" => modelOutput.alias(),
            _ => sample * sqrtA - modelOutput * sqrtB,
        };
        if (Thresholding) x0 = ThresholdSample(x0, DynamicThresholdingRatio, SampleMaxValue);
        else if (ClipSample) x0 = x0.clamp(-ClipSampleRange, ClipSampleRange);

        float x0Coeff = MathF.Sqrt(aPrev) * curBeta / bT;
        float sampleCoeff = MathF.Sqrt(curAlpha) * bPrev / bT;
        var prev = x0 * x0Coeff + sample * sampleCoeff;

        if (t > 0)
        {
            var z = noise ?? ScheduleMath.Randn(modelOutput, generator, modelOutput.dtype);
            // _get_variance recomputes beta_t from the same alphas; clamped away from 0 for the logs.
            float variance = Math.Max(bPrev / bT * (1f - aT / aPrev), 1e-20f);
            Tensor scaled = VarianceType switch
            {
                "fixed_small" => z * MathF.Sqrt(variance),
                "fixed_small_log" => z * ScheduleMath.TorchExp(0.5f * MathF.Log(variance)),
                "fixed_large" => z * MathF.Sqrt(curBeta),
                "fixed_large_log" => z * MathF.Sqrt(MathF.Log(curBeta)), // as diffusers (NaN for beta < 1)
                "learned" => predictedVariance is null ? throw LearnedNeedsChannels() : predictedVariance.sqrt() * z,
                _ => predictedVariance is null ? throw LearnedNeedsChannels()
                    : ((predictedVariance + 1) / 2 * MathF.Log(curBeta) + (1 - (predictedVariance + 1) / 2) * MathF.Log(variance)).mul(0.5).exp() * z,
            };
            prev = prev + scaled;
        }
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
    }

    ArgumentException LearnedNeedsChannels() =>
        new($"{ClassName}: variance_type '{VarianceType}' needs a model output with twice the sample's channels");

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) => AddNoiseByAlphas(originalSamples, noise, timesteps);
}
