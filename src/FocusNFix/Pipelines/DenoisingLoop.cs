using FocusNFix.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Pipelines;

/// <summary>How gradients flow through sampling (DRaFT and its relatives).</summary>
public enum BackpropMode
{
    /// <summary>DRaFT-K: the first T-K steps without gradient, the last K with it.</summary>
    DraftK,
    /// <summary>ReFL-style: no gradient until step T-K, then one step with gradient whose predicted x0 is the image.</summary>
    Refl,
    /// <summary>Gradient through every step (AlignProp-style; K = T); needs checkpointing to fit in memory.</summary>
    Full,
}

/// <summary>
/// Where a training run differentiates the loop. The same window without gradients gives the base model's result
/// the constraint compares with (I0): the final image for DRaFT-K and full backprop, the x0 prediction at step T-K for
/// ReFL, so the constraint always compares like with like.
/// </summary>
public sealed record GradientWindow(BackpropMode Mode, int K, bool Checkpointing)
{
    /// <summary>The first loop iteration under autograd in a loop of <paramref name="total"/> iterations.</summary>
    public int FirstStep(int total) => Mode == BackpropMode.Full ? 0 : Math.Max(0, total - K);

    /// <summary>The iteration whose x0 prediction ends a ReFL loop; null for the others, which run to the end.</summary>
    public int? StopStep(int total) => Mode == BackpropMode.Refl ? FirstStep(total) : null;
}

/// <summary>
/// The one denoising loop of the library, after diffusers 0.27.2 StableDiffusionPipeline.__call__: classifier-free
/// guidance (and Safe Latent Diffusion's third branch), the scheduler's step, per-image noise streams for stochastic
/// schedulers. Sampling, the cache of originals, training, evaluation and the heatmap command all go through
/// <see cref="Run"/>, so an image the trainer makes with a zero LoRA is the cached original bit for bit.
/// </summary>
public sealed class DenoisingLoop
{
    public required int Steps { get; init; }
    /// <summary>Classifier-free guidance runs when this is above 1 and the text states carry the uncond branch.</summary>
    public double GuidanceScale { get; init; } = 1.0;
    /// <summary>DDIM's eta; the other schedulers ignore it.</summary>
    public double Eta { get; init; }
    /// <summary>Safe Latent Diffusion state (its momentum changes as the loop runs): one per call; null without SLD.</summary>
    public SafeGuidance? Safety { get; init; }
    /// <summary>Null: plain sampling to the end.</summary>
    public GradientWindow? Window { get; init; }
    /// <summary>False runs the window's schedule (including ReFL's early stop) without autograd: the cache of originals.</summary>
    public bool WithGrad { get; init; }

    /// <summary>Guidance branches stacked in the text states: 1 (none), 2 (uncond | cond), 3 (uncond | cond | SLD concept).</summary>
    public int Branches => GuidanceScale <= 1.0 ? 1 : Safety is null ? 2 : 3;

    /// <summary>
    /// Seeds of the per-image generators that drive a stochastic scheduler's noise, one stream per image, so an image
    /// depends on its own seed only (and the training path draws exactly the noise its original drew).
    /// </summary>
    public static List<Generator> NoiseGenerators(IReadOnlyList<long> seeds) =>
        seeds.Select(s => new Generator((ulong)s + 0x9E3779B97F4A7C15UL)).ToList();

    /// <summary>
    /// From the initial noise x_T [B,C,h,w] (before init_noise_sigma) and the text states for <see cref="Branches"/>
    /// branches to the final latents in model space, or the x0 prediction at ReFL's step. Steps inside the gradient
    /// window run under autograd (each UNet call checkpointed when the window says so); every other step runs without.
    /// </summary>
    /// <param name="generators">one per image for the scheduler's noise; null lets the scheduler draw (diffusers' behaviour with given latents).</param>
    /// <param name="onStep">sees each step's tensors, valid only during the call.</param>
    public Tensor Run(TextToImagePipeline pipe, Tensor noise, Tensor textStates, IReadOnlyList<Generator>? generators,
        Action<StepTrace>? onStep = null, Action<int, int>? progress = null)
    {
        var sched = pipe.Scheduler;
        if (generators is not null && generators.Count != noise.shape[0])
            throw new ArgumentException($"{generators.Count} noise generators for a batch of {noise.shape[0]}");
        if (Safety is not null && Window is { Checkpointing: true } && WithGrad)
            throw new InvalidInputException("safe latent diffusion cannot be trained through with checkpointing: its momentum would be updated twice");
        if (sched is DdimScheduler ddim) ddim.Eta = Eta;
        sched.SetTimesteps(Steps);
        var timesteps = sched.Timesteps;
        int total = (int)timesteps.shape[0];
        int firstGrad = Window is not null && WithGrad ? Window.FirstStep(total) : int.MaxValue;
        int? stop = Window?.StopStep(total);
        int branches = Branches;
        var shape = new long[] { 1, noise.shape[1], noise.shape[2], noise.shape[3] };

        var x = (noise.to(ScalarType.Float32) * sched.InitNoiseSigma).MoveToOuterDisposeScope();
        for (int i = 0; i < total; i++)
        {
            using var stepScope = NewDisposeScope();
            using var mode = i >= firstGrad ? enable_grad() : no_grad();
            var t = timesteps[i];
            var xin = branches == 1 ? x : cat(Enumerable.Repeat(x, branches).ToArray(), 0);
            // Scaled outside the checkpoint, at an explicit index: the recompute in backward must not touch the scheduler.
            xin = sched.ScaleModelInput(xin, t, i);
            var unetOut = i >= firstGrad && Window!.Checkpointing
                ? GradientCheckpoint.Apply((xs, ctx) => UNet(pipe, xs, ctx[1], ctx[0]), xin, t, textStates)
                : UNet(pipe, xin, textStates, t);
            var noisePred = CombineGuidance(unetOut, i);
            // Drawn at every step, stochastic scheduler or not, so the streams never depend on the scheduler.
            Tensor? stepNoise = generators is null ? null
                : cat(generators.Select(g => randn(shape, generator: g)).ToList(), 0).to(x.device);
            var output = sched.Step(noisePred, t, x, noise: stepNoise);
            onStep?.Invoke(new StepTrace(i, t, xin, unetOut, noisePred, output.PredOriginalSample, output.PrevSample));
            progress?.Invoke(i + 1, stop + 1 ?? total);
            if (i == stop)
            {
                var x0 = output.PredOriginalSample ?? throw new InvalidInputException($"{sched.ClassName} returns no predicted x0, which ReFL needs: choose another scheduler");
                x.Dispose();
                return x0.MoveToOuterDisposeScope();
            }
            x.Dispose();
            x = output.PrevSample.MoveToOuterDisposeScope();
        }
        return x;
    }

    static Tensor UNet(TextToImagePipeline pipe, Tensor xin, Tensor textStates, Tensor t) =>
        pipe.Unet.forward(xin.to(pipe.DType), t.to(pipe.Device), textStates).to(ScalarType.Float32);

    /// <summary>
    /// The model's outputs for the guidance branches to the noise prediction: without guidance the output itself;
    /// with classifier-free guidance (batch uncond | cond) uncond + g * (cond - uncond); with Safe Latent Diffusion
    /// (batch uncond | cond | safety concept) the same with the guidance direction of <see cref="SafeGuidance"/>.
    /// </summary>
    Tensor CombineGuidance(Tensor unetOut, int step)
    {
        if (GuidanceScale <= 1.0) return unetOut;
        if (Safety is null)
        {
            var chunks = unetOut.chunk(2, 0);
            return chunks[0] + GuidanceScale * (chunks[1] - chunks[0]);
        }
        var b = unetOut.chunk(3, 0);
        return b[0] + GuidanceScale * Safety.Direction(b[0], b[1], b[2], step);
    }
}
