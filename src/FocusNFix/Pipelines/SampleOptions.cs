using static TorchSharp.torch;

namespace FocusNFix.Pipelines;

/// <summary>Options of one text-to-image call. Defaults follow diffusers' StableDiffusionPipeline.</summary>
public sealed class SampleOptions
{
    public int Steps { get; set; } = 50;
    /// <summary>Classifier-free guidance runs only when this is above 1 (as in diffusers).</summary>
    public double GuidanceScale { get; set; } = 7.5;
    /// <summary>One negative prompt for every image; null means "" (diffusers' behaviour).</summary>
    public string? NegativePrompt { get; set; }
    public int? Height { get; set; }
    public int? Width { get; set; }
    /// <summary>DDIM's eta (ignored by the other schedulers).</summary>
    public double Eta { get; set; }
    /// <summary>
    /// One seed per image: image i's initial noise is randn([1,C,h,w]) from a CPU generator seeded with Seeds[i],
    /// so an image depends on its own seed only, never on the batch it was drawn in.
    /// </summary>
    public IReadOnlyList<long>? Seeds { get; set; }
    /// <summary>Explicit initial latents [B,C,h,w] (before init_noise_sigma scaling), instead of seeds.</summary>
    public Tensor? Latents { get; set; }
    /// <summary>diffusers' clip_skip: 0 uses the last hidden state.</summary>
    public int ClipSkip { get; set; }
    /// <summary>
    /// Safe Latent Diffusion (diffusers' StableDiffusionPipelineSafe): a third guidance branch that steers away from a
    /// concept. Needs classifier-free guidance (GuidanceScale above 1); null = plain sampling.
    /// </summary>
    public SldOptions? Sld { get; set; }

    /// <summary>
    /// Throws <see cref="InvalidInputException"/> naming the first setting out of range (NaN guidance once crashed deep in
    /// the sampling loop). Sizes are checked against the smallest VAE multiple, 8; the pipeline checks its own.
    /// </summary>
    /// <param name="label">How to name a setting, from its diffusers name (e.g. a CLI flag); default the diffusers name.</param>
    public void Validate(Func<string, string>? label = null)
    {
        void Check(bool ok, string key, object? value, string expected)
        {
            if (!ok) throw new InvalidInputException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{label?.Invoke(key) ?? key} = {value}: expected {expected}"));
        }
        Check(Steps is >= 1 and <= MaxSteps, "num_inference_steps", Steps, $"an integer from 1 to {MaxSteps}");
        Check(double.IsFinite(GuidanceScale), "guidance_scale", GuidanceScale, "a finite number (classifier-free guidance above 1)");
        Check(double.IsFinite(Eta) && Eta is >= 0 and <= 1, "eta", Eta, "a number from 0 (deterministic DDIM) to 1");
        Check(ClipSkip >= 0, "clip_skip", ClipSkip, "an integer >= 0");
        foreach (var (key, side) in new[] { ("height", Height), ("width", Width) })
            if (side is int s)
                Check(s > 0 && s % 8 == 0 && s <= Models.ModelSizeEstimate.MaxImageSide, key, s,
                    $"a positive multiple of 8, at most {Models.ModelSizeEstimate.MaxImageSide} pixels");
        Sld?.Validate(label);
    }

    /// <summary>More steps than any scheduler's training timesteps (1000) gain nothing; 10000 leaves room for custom ones.</summary>
    public const int MaxSteps = 10_000;
}

/// <summary>The tensors of one denoising step, for conformance checks and debugging.</summary>
public sealed record StepTrace(int Index, Tensor Timestep, Tensor LatentModelInput, Tensor UnetOutput, Tensor NoisePred, Tensor? PredOriginalSample, Tensor Latents);

/// <summary>The result of a call: images [B,3,H,W] in [0,1] and the final latents (model space).</summary>
public sealed record SampleResult(Tensor Images, Tensor FinalLatents) : IDisposable
{
    public void Dispose() { Images.Dispose(); FinalLatents.Dispose(); }
}
