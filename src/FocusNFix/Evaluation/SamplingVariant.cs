using FocusNFix.Pipelines;

namespace FocusNFix.Evaluation;

/// <summary>
/// A training-free baseline: the base model sampled with other options (a negative prompt, Safe Latent Diffusion, its
/// own guidance scale) from the same seeds as every other method. Null members keep the evaluation's own setting.
/// </summary>
public sealed record SamplingVariant(string Method)
{
    public double? GuidanceScale { get; init; }
    public string? NegativePrompt { get; init; }
    public SldOptions? Sld { get; init; }

    /// <summary>The sampling options of this variant within an evaluation's settings (steps and eta are the evaluation's).</summary>
    public SampleOptions Options(EvalSetup s) => new()
    {
        Steps = s.Steps, GuidanceScale = GuidanceScale ?? s.GuidanceScale, Eta = s.Eta, NegativePrompt = NegativePrompt, Sld = Sld,
    };
}
