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
}

/// <summary>The tensors of one denoising step, for conformance checks and debugging.</summary>
public sealed record StepTrace(int Index, Tensor Timestep, Tensor LatentModelInput, Tensor UnetOutput, Tensor NoisePred, Tensor? PredOriginalSample, Tensor Latents);

/// <summary>The result of a call: images [B,3,H,W] in [0,1] and the final latents (model space).</summary>
public sealed record SampleResult(Tensor Images, Tensor FinalLatents) : IDisposable
{
    public void Dispose() { Images.Dispose(); FinalLatents.Dispose(); }
}
