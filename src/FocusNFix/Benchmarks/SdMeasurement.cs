using System.Diagnostics;
using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using FocusNFix.Training;
using static TorchSharp.torch;

namespace FocusNFix.Benchmarks;

/// <summary>What one measurement gave: the wall times of its timed repeats (after one untimed warm-up) and its peak RSS.</summary>
public sealed record MeasurementResult(string Name, int Size, List<double> Seconds, double PeakRssMiB, double ModelRssMiB, double WarmRssMiB, bool PeakWasReset)
{
    public double MedianSeconds => Seconds.Order().ElementAt(Seconds.Count / 2);
}

/// <summary>
/// The operations of <c>fnf bench --preset</c>, each measured on its own in a fresh process (so one figure's memory
/// peak never hides another's): the UNet forward without grad, a rank-64 LoRA forward+backward, the VAE decode with
/// and without grad, and one Focus-N-Fix DRaFT-K training step for K = 1, 2, 4. bench/sd_peer.py measures the same
/// names the same way with diffusers + peft.
/// </summary>
public static class SdMeasurement
{
    public const int LoraRank = 64;
    /// <summary>Sampling steps run without gradient before the training step's window; the full 50-step chain would be
    /// ~19 minutes per image at 512 px on a 2-core CPU, and these steps cost the same per step whatever K is.</summary>
    public const int NoGradStepsBeforeWindow = 2;
    public const double GuidanceScale = 7.5;
    public const double Lambda = 1.0;
    public const string Prompt = "a photograph of an astronaut riding a horse";

    public static readonly string[] Names =
    {
        "unet_forward_no_grad", "unet_lora_forward_backward", "vae_decode_no_grad", "vae_decode_grad", "vae_decode_grad_checkpointed",
        "train_step_k1", "train_step_k2", "train_step_k4",
    };

    /// <summary>One line per measurement for the report: what exactly is timed.</summary>
    public static readonly IReadOnlyDictionary<string, string> Descriptions = new Dictionary<string, string>
    {
        ["unet_forward_no_grad"] = "one UNet call, batch 1, no grad",
        ["unet_lora_forward_backward"] = $"rank-{LoraRank} LoRA on to_q/to_k/to_v/to_out.0, one UNet call batch 1 + backward of mean(out^2), no checkpointing",
        ["vae_decode_no_grad"] = "VAE decode of one latent, no grad",
        ["vae_decode_grad"] = "VAE decode of one latent + backward of the image mean to the latent, no checkpointing",
        ["vae_decode_grad_checkpointed"] = "the same with every decoder resnet checkpointed (as in the training step)",
        ["train_step_k1"] = TrainStepDescription(1),
        ["train_step_k2"] = TrainStepDescription(2),
        ["train_step_k4"] = TrainStepDescription(4),
    };

    static string TrainStepDescription(int k) =>
        $"DRaFT-K step, K = {k}: {NoGradStepsBeforeWindow} DDIM steps without grad then {k} with grad (guidance {GuidanceScale}, batch 1 = 2 UNet rows), " +
        $"VAE decode, loss -reward + {Lambda} * ||(1-M)(I-I0)|| (stand-in reward: mean brightness), backward, AdamW on the rank-{LoraRank} LoRA; " +
        "each UNet call and every resnet/transformer checkpointed";

    public static void CheckName(string name)
    {
        if (!Names.Contains(name)) throw new InvalidInputException($"--measure {name}: expected one of {string.Join(", ", Names)}");
    }

    /// <summary>Runs measurement <paramref name="name"/> at <paramref name="size"/> px: one warm-up, then <paramref name="repeats"/> timed runs.</summary>
    public static MeasurementResult Run(TextToImagePipeline pipe, string name, int size, int repeats)
    {
        CheckName(name);
        if (repeats < 1) throw new InvalidInputException($"--repeats {repeats}: expected an integer >= 1");
        pipe.ImageSize(size, size);
        if (pipe.Vae is null) throw new InvalidInputException($"{pipe.Folder.Path}: the SD benchmark needs a latent pipeline with a VAE");
        using var gcPause = TorchGcPause.Begin();
        int latent = size / pipe.VaeScaleFactor;
        foreach (var p in pipe.Unet.parameters().Concat(pipe.TextEncoder.parameters()).Concat(pipe.Vae.parameters())) p.requires_grad = false;
        using var gen = new Generator(1234);
        using var fixedScope = NewDisposeScope();
        var cond = WithoutGrad(() => pipe.EncodePrompts(new[] { Prompt }));
        var x = randn(new long[] { 1, pipe.LatentChannels, latent, latent }, generator: gen).to(pipe.DType, pipe.Device);
        var t = tensor(500L).to(pipe.Device);

        LoraNetwork? lora = null;
        AdamW? opt = null;
        try
        {
            Action body;
            switch (name)
            {
                case "unet_forward_no_grad":
                    body = () => { using var _ = no_grad(); using var s = NewDisposeScope(); pipe.Unet.forward(x, t, cond); };
                    break;
                case "unet_lora_forward_backward":
                    lora = AttachLora(pipe);
                    body = () => { using var s = NewDisposeScope(); pipe.Unet.forward(x, t, cond).to(ScalarType.Float32).square().mean().backward(); ZeroGrads(lora); };
                    break;
                case "vae_decode_no_grad":
                    body = () => { using var _ = no_grad(); using var s = NewDisposeScope(); pipe.DecodeRaw(x); };
                    break;
                case "vae_decode_grad":
                case "vae_decode_grad_checkpointed":
                    pipe.ActivationCheckpointing = name.EndsWith("_checkpointed");
                    body = () =>
                    {
                        using var s = NewDisposeScope();
                        var z = x.detach().requires_grad_(true);
                        GradientCheckpoint.Backward(pipe.DecodeRaw(z).mean());
                    };
                    break;
                default:
                    int k = int.Parse(name["train_step_k".Length..]);
                    lora = AttachLora(pipe);
                    opt = new AdamW(lora.TrainableParameters(), 1e-4);
                    body = TrainStep(pipe, lora, opt, cond, k, size, gen);
                    break;
            }
            PeakRss.TrimHeap();
            double modelRss = PeakRss.CurrentMiB();
            body(); // warm-up: first calls allocate and pick kernels
            PeakRss.TrimHeap();
            bool reset = PeakRss.Reset();
            double warmRss = PeakRss.CurrentMiB();
            var times = new List<double>();
            for (int i = 0; i < repeats; i++)
            {
                var sw = Stopwatch.StartNew();
                body();
                times.Add(sw.Elapsed.TotalSeconds);
            }
            return new MeasurementResult(name, size, times, PeakRss.PeakMiB(), modelRss, warmRss, reset);
        }
        finally
        {
            opt?.Dispose();
            lora?.Detach();
            lora?.Dispose();
            pipe.ActivationCheckpointing = false;
        }
    }

    static Tensor WithoutGrad(Func<Tensor> f)
    {
        using var _ = no_grad();
        return f();
    }

    static LoraNetwork AttachLora(TextToImagePipeline pipe)
    {
        using var g = new Generator(7);
        var lora = LoraNetwork.Attach(pipe.Unet, new LoraConfig { Rank = LoraRank, Alpha = LoraRank }, g);
        foreach (var p in lora.TrainableParameters()) p.requires_grad = true;
        return lora;
    }

    static void ZeroGrads(LoraNetwork lora)
    {
        foreach (var p in lora.TrainableParameters()) p.grad?.zero_();
    }

    /// <summary>
    /// One Focus-N-Fix step as the trainer runs it (DenoisingLoop with a DRaFT-K window and checkpointing, the
    /// differentiable decode, <see cref="FocusNFixLoss"/>, AdamW), on a fixed original I0 and mask (the trainer caches
    /// those before training, so they are not part of a step).
    /// </summary>
    static Action TrainStep(TextToImagePipeline pipe, LoraNetwork lora, AdamW opt, Tensor cond, int k, int size, Generator gen)
    {
        pipe.ActivationCheckpointing = true;
        Tensor textStates;
        using (no_grad()) textStates = cat(new[] { pipe.EncodePrompts(new[] { "" }), cond }, 0);
        int latent = size / pipe.VaeScaleFactor;
        var noise = randn(new long[] { 1, pipe.LatentChannels, latent, latent }, generator: gen);
        var originalLatents = randn(new long[] { 1, pipe.LatentChannels, latent, latent }, generator: gen);
        var originalImages = rand(new long[] { 1, 3, size, size }, generator: gen);
        // The region to fix: the centre quarter of the image.
        var masks = zeros(1, 1, size, size);
        masks[.., .., (size / 4)..(3 * size / 4), (size / 4)..(3 * size / 4)] = tensor(1f);
        var reward = new MeanBrightnessReward();
        var settings = new LossSettings(Lambda, ConstraintNorm.Frobenius, LatentSpace: false);
        var loop = new DenoisingLoop
        {
            Steps = NoGradStepsBeforeWindow + k, GuidanceScale = GuidanceScale,
            Window = new GradientWindow(BackpropMode.DraftK, k, Checkpointing: true), WithGrad = true,
        };
        return () =>
        {
            using var scope = NewDisposeScope();
            opt.ZeroGrad();
            var z = loop.Run(pipe, noise.to(pipe.Device), textStates, generators: null);
            var images = pipe.Decode(z);
            var terms = FocusNFixLoss.Compute(new LossBatch(images, z, originalImages.to(pipe.Device), originalLatents.to(pipe.Device), masks.to(pipe.Device), new[] { Prompt }), reward, settings);
            GradientCheckpoint.Backward(terms.Loss);
            opt.Step();
        };
    }

    /// <summary>A reward without weights (the mean of each image), so the step measures the model side only.</summary>
    sealed class MeanBrightnessReward : IReward
    {
        public string Name => "mean-brightness";
        public Tensor Score(Tensor images, IReadOnlyList<string> prompts) => images.mean(new long[] { 1, 2, 3 });
        public void To(Device device) { }
    }
}
