using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Models;
using FocusNFix.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Pipelines;

/// <summary>
/// Text-to-image sampling for diffusers-format pipelines: StableDiffusionPipeline (latent space, with a VAE)
/// and FocusNFixPixelPipeline (pixel space, no VAE) through the same loop, which follows
/// diffusers 0.27.2 StableDiffusionPipeline.__call__ step for step.
/// </summary>
public sealed class TextToImagePipeline : IDisposable
{
    public PipelineFolder Folder { get; }
    public ClipTokenizer Tokenizer { get; }
    public ClipTextModel TextEncoder { get; }
    public UNet2DConditionModel Unet { get; }
    public AutoencoderKL? Vae { get; }
    /// <summary>The scheduler's saved config; other schedulers are built from it as diffusers' from_config does.</summary>
    public JsonConfig SchedulerConfig { get; }
    public IScheduler Scheduler { get; set; }
    public Device Device { get; }
    public ScalarType DType { get; }
    /// <summary>The LoRA loaded on the UNet (hooked, unmerged), or null.</summary>
    public LoraNetwork? Lora { get; private set; }

    TextToImagePipeline(PipelineFolder folder, ClipTokenizer tokenizer, ClipTextModel textEncoder, UNet2DConditionModel unet,
        AutoencoderKL? vae, JsonConfig schedulerConfig, IScheduler scheduler, Device device, ScalarType dtype)
    {
        Folder = folder; Tokenizer = tokenizer; TextEncoder = textEncoder; Unet = unet; Vae = vae;
        SchedulerConfig = schedulerConfig; Scheduler = scheduler; Device = device; DType = dtype;
    }

    /// <summary>Loads every component strictly from a pipeline folder and moves the models to a device and dtype.</summary>
    public static TextToImagePipeline Load(string folder, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        device ??= CPU;
        var pf = PipelineFolder.Open(folder);
        CheckFiles(pf);
        var tokenizer = ClipTokenizer.FromFolder(pf.Component("tokenizer"));
        var schedulerConfigPath = Path.Combine(pf.Component("scheduler"), "scheduler_config.json");
        var schedulerConfig = JsonConfig.Load(schedulerConfigPath);
        var scheduler = SchedulerFactory.FromConfig(schedulerConfig);
        ClipTextModel textEncoder;
        UNet2DConditionModel unet;
        AutoencoderKL? vae;
        // Weights in mappings of their own keep the heap for the forward passes' temporaries (NativeSettings).
        using (NativeSettings.WeightMappings())
        {
            textEncoder = ClipTextModel.FromPretrained(pf.Component("text_encoder"));
            unet = UNet2DConditionModel.FromPretrained(pf.Component("unet"));
            vae = pf.IsPixelSpace ? null : AutoencoderKL.FromPretrained(pf.Component("vae"));
            int latentChannels = vae?.Config.LatentChannels ?? 3;
            if (unet.Config.InChannels != latentChannels)
                throw new InvalidInputException($"{pf.Component("unet")}: in_channels {unet.Config.InChannels} does not match " +
                    (vae != null ? $"the VAE's latent_channels {latentChannels}" : "the 3 image channels of a pixel-space pipeline"));
            if (unet.Config.CrossAttentionDim != textEncoder.Config.HiddenSize)
                throw new InvalidInputException($"{pf.Component("unet")}: cross_attention_dim {unet.Config.CrossAttentionDim} does not match the text encoder's hidden_size {textEncoder.Config.HiddenSize}");

            // A conversion to another dtype allocates the weights again: inside the scope too.
            foreach (var m in new nn.Module?[] { textEncoder, unet, vae })
            {
                if (m == null) continue;
                m.to(device, dtype);
                m.eval();
            }
        }
        return new TextToImagePipeline(pf, tokenizer, textEncoder, unet, vae, schedulerConfig, scheduler, device, dtype);
    }

    /// <summary>
    /// Reads every component's config and weight-file header (not the weights) before any model is built: a bad file
    /// anywhere in the folder is reported at once, not after the components before it were loaded. The loaders read
    /// the configs again; that costs microseconds.
    /// </summary>
    static void CheckFiles(PipelineFolder pf)
    {
        JsonConfig.Load(Path.Combine(pf.Component("scheduler"), "scheduler_config.json"));
        ClipTextConfig.Load(Path.Combine(pf.Component("text_encoder"), "config.json"));
        Safetensors.ReadHeader(WeightFiles.Find(pf.Component("text_encoder"), "model"));
        UNet2DConditionConfig.FromJson(JsonConfig.Load(Path.Combine(pf.Component("unet"), "config.json")));
        Safetensors.ReadHeader(WeightFiles.Find(pf.Component("unet"), "diffusion_pytorch_model"));
        if (pf.IsPixelSpace) return;
        AutoencoderKLConfig.FromJson(JsonConfig.Load(Path.Combine(pf.Component("vae"), "config.json")));
        Safetensors.ReadHeader(WeightFiles.Find(pf.Component("vae"), "diffusion_pytorch_model"));
    }

    /// <summary>Switches the scheduler by CLI name (ddim, ddpm, euler, euler-a, dpmpp-2m, pndm, ...).</summary>
    public void UseScheduler(string name)
    {
        var next = SchedulerFactory.Create(name, SchedulerConfig);
        (Scheduler as IDisposable)?.Dispose();
        Scheduler = next;
    }

    /// <summary>
    /// Loads a LoRA file (PEFT, diffusers, attention-processor or kohya keys) onto the UNet at an inference scale,
    /// replacing any LoRA loaded before. Set <c>Lora.Scale</c> to change the scale later.
    /// </summary>
    public LoraNetwork LoadLora(string path, double scale = 1.0)
    {
        UnloadLora();
        Lora = LoraNetwork.Load(Unet, path, scale);
        return Lora;
    }

    /// <summary>Removes the loaded LoRA (unmerging it first if it was merged), restoring the base UNet.</summary>
    public void UnloadLora()
    {
        if (Lora is null) return;
        if (Lora.IsMerged) Lora.Unmerge();
        Lora.Dispose();
        Lora = null;
    }

    /// <summary>
    /// Fine-grained activation checkpointing under autograd: every resnet and transformer of the UNet and of the VAE
    /// decoder keeps only its input and is recomputed in backward (<see cref="ActivationCheckpoints"/>). Inside the
    /// loop's checkpointed UNet calls this bounds the recompute's memory by one block instead of the whole UNet, and it
    /// makes the differentiable VAE decode keep its block inputs only. Gradients are unchanged (the recompute is the
    /// same computation); a backward costs one more forward. Off by default; no effect without gradients.
    /// </summary>
    public bool ActivationCheckpointing
    {
        get => _activationCheckpointing;
        set
        {
            CheckpointRunner? runner = value ? GradientCheckpoint.Apply : null;
            ActivationCheckpoints.Set(Unet, runner);
            if (Vae is not null) ActivationCheckpoints.Set(Vae.decoder, runner);
            _activationCheckpointing = value;
        }
    }
    bool _activationCheckpointing;

    /// <summary>Pixels per latent cell: 2^(len(vae.block_out_channels)-1), 1 for pixel-space models.</summary>
    public int VaeScaleFactor => Vae?.ScaleFactor ?? 1;
    public int LatentChannels => Unet.Config.InChannels;
    public int DefaultSize => Unet.Config.SampleSize * VaeScaleFactor;

    /// <summary>Tokenizes and encodes prompts to the text encoder's hidden states [B,77,D] in the model dtype.</summary>
    public Tensor EncodePrompts(IReadOnlyList<string> prompts, int clipSkip = 0, Action<string>? warn = null)
    {
        using var scope = NewDisposeScope();
        var ids = Tokenizer.Tokenize(prompts, warn).to(Device);
        return TextEncoder.EncodePrompt(ids, clipSkip).MoveToOuterDisposeScope();
    }

    /// <summary>Initial noise for each seed: randn([1,C,h,w]) from a CPU generator seeded with that seed.</summary>
    public Tensor NoiseFromSeeds(IReadOnlyList<long> seeds, int latentHeight, int latentWidth)
    {
        var parts = seeds.Select(s =>
        {
            using var g = new Generator((ulong)s);
            return randn(new long[] { 1, LatentChannels, latentHeight, latentWidth }, generator: g);
        }).ToList();
        var noise = cat(parts, 0).to(Device);
        foreach (var p in parts) p.Dispose();
        return noise;
    }

    /// <summary>The image size of a call (the model's default where unset), checked against the VAE's multiple and memory.</summary>
    public (int Height, int Width) ImageSize(int? height, int? width)
    {
        int h = height ?? DefaultSize, w = width ?? DefaultSize;
        int multiple = Math.Max(8, VaeScaleFactor);
        ModelSizeEstimate.CheckImageSize(h, w, multiple);
        return (h, w);
    }

    /// <summary>
    /// Samples one image per prompt. <paramref name="onStep"/> sees each step's tensors, valid only during the
    /// call (DetachFromDisposeScope() a clone to keep one); <paramref name="progress"/> gets (done, total).
    /// </summary>
    public SampleResult Sample(IReadOnlyList<string> prompts, SampleOptions options, Action<StepTrace>? onStep = null,
        Action<int, int>? progress = null, Action<string>? warn = null)
    {
        using var gcPause = TorchGcPause.Begin();
        if (prompts.Count == 0) throw new InvalidInputException("no prompts given");
        options.Validate();
        int batch = prompts.Count;
        var (height, width) = ImageSize(options.Height, options.Width);
        int lh = height / VaeScaleFactor, lw = width / VaeScaleFactor;

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        bool cfg = options.GuidanceScale > 1.0;
        using var safety = ResolveSafeGuidance(options, cfg, warn);
        var cond = EncodePrompts(prompts, options.ClipSkip, warn);
        Tensor ehs = cond;
        if (cfg)
        {
            var uncond = EncodePrompts(Enumerable.Repeat(options.NegativePrompt ?? "", batch).ToList(), options.ClipSkip, warn);
            // As diffusers: the concept is encoded once and repeated for each image, the third block of the batch.
            ehs = safety is null ? cat(new[] { uncond, cond }, 0)
                : cat(new[] { uncond, cond, EncodePrompts(new[] { options.Sld!.Concept }, options.ClipSkip, warn).repeat(batch, 1, 1) }, 0);
        }

        var seeds = options.Seeds ?? Enumerable.Range(0, batch).Select(i => (long)i).ToList();
        if (options.Latents is null && seeds.Count != batch)
            throw new InvalidInputException($"{seeds.Count} seeds given for {batch} prompts: expected one seed per prompt");
        Tensor latents;
        if (options.Latents is { } given)
        {
            var expected = new long[] { batch, LatentChannels, lh, lw };
            if (!given.shape.SequenceEqual(expected))
                throw new InvalidInputException($"initial latents have shape [{string.Join(",", given.shape)}], expected [{string.Join(",", expected)}]");
            latents = given.to(ScalarType.Float32, Device);
        }
        else latents = NoiseFromSeeds(seeds, lh, lw);

        // Stochastic schedulers get their noise from per-image generators, so an image depends on its own seed only.
        var generators = options.Latents is null ? DenoisingLoop.NoiseGenerators(seeds) : null;
        try
        {
            var loop = new DenoisingLoop { Steps = options.Steps, GuidanceScale = options.GuidanceScale, Eta = options.Eta, Safety = safety };
            if (safety is not null && options.Sld!.Settings.WarmupSteps >= options.Steps)
                warn?.Invoke($"SLD warm-up {options.Sld.Settings.WarmupSteps} steps >= the {options.Steps} sampling steps: the safety guidance never applies");
            var x = loop.Run(this, latents, ehs, generators, onStep, progress);
            var images = Decode(x);
            return new SampleResult(images.MoveToOuterDisposeScope(), x.MoveToOuterDisposeScope());
        }
        finally
        {
            if (generators is not null) foreach (var g in generators) g.Dispose();
        }
    }

    /// <summary>The SLD state of a call, or null without SLD (no concept, or an SLD guidance scale of at most 1 as diffusers).</summary>
    static SafeGuidance? ResolveSafeGuidance(SampleOptions options, bool cfg, Action<string>? warn)
    {
        if (options.Sld is not { } sld) return null;
        sld.Validate();
        if (!cfg)
            throw new InvalidInputException($"safe latent diffusion (concept '{sld.Concept}') needs classifier-free guidance: guidance scale {options.GuidanceScale} must be above 1");
        if (sld.Settings.Enabled) return new SafeGuidance(sld.Settings);
        warn?.Invoke($"SLD guidance scale {sld.Settings.GuidanceScale} <= 1 turns safe latent diffusion off (as diffusers): sampling without the safety concept");
        return null;
    }

    /// <summary>Final latents to images in [0,1]: VAE decode of latents / scaling_factor, or the pixels themselves.</summary>
    public Tensor Decode(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var raw = DecodeRaw(latents);
        return (raw / 2 + 0.5).clamp(0, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Before post-processing: vae.decode(latents / scaling_factor), or the latents for pixel-space models.</summary>
    public Tensor DecodeRaw(Tensor latents)
    {
        if (Vae is null) return latents.to(ScalarType.Float32).alias();
        using var scope = NewDisposeScope();
        var z = (latents / Vae.Config.ScalingFactor).to(DType);
        return Vae.Decode(z).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        Lora?.Dispose();
        TextEncoder.Dispose();
        Unet.Dispose();
        Vae?.Dispose();
        (Scheduler as IDisposable)?.Dispose();
    }
}
