using FocusNFix.Pipelines;
using static TorchSharp.torch;

namespace FocusNFix.Training;

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
/// Sampling that can be differentiated with respect to the UNet's trainable weights (LoRA): the same loop as
/// <see cref="TextToImagePipeline.Sample"/> (classifier-free guidance, the scheduler's step), with the last K
/// steps under autograd and, optionally, each UNet call checkpointed (recomputed in backward).
/// </summary>
public sealed class DifferentiableSampler
{
    readonly TextToImagePipeline _pipe;
    public BackpropMode Mode { get; init; } = BackpropMode.DraftK;
    public int K { get; init; } = 2;
    public bool Checkpointing { get; init; } = true;
    public int Steps { get; init; } = 50;
    public double GuidanceScale { get; init; } = 7.5;

    public DifferentiableSampler(TextToImagePipeline pipe) { _pipe = pipe; }

    /// <summary>
    /// From initial noise [B,C,h,w] and text states (cond, and uncond when guidance is on) to final latents whose graph
    /// reaches the trainable weights through the last steps. The result is in model space (pixels in [-1,1] for
    /// pixel-space models); decode with <see cref="TextToImagePipeline.DecodeRaw"/> under grad.
    /// </summary>
    public Tensor Sample(Tensor noise, Tensor cond, Tensor? uncond)
    {
        var sched = _pipe.Scheduler;
        sched.SetTimesteps(Steps);
        var timesteps = sched.Timesteps;
        int total = (int)timesteps.shape[0];
        int firstGrad = Mode switch { BackpropMode.Full => 0, _ => Math.Max(0, total - K) };
        bool cfg = uncond is not null && GuidanceScale > 1.0;
        var ehs = cfg ? cat(new[] { uncond!, cond }, 0) : cond;
        var x = (noise * sched.InitNoiseSigma).MoveToOuterDisposeScope();
        for (int i = 0; i < total; i++)
        {
            bool withGrad = i >= firstGrad;
            using var scope = NewDisposeScope();
            var t = timesteps[i];
            Tensor next;
            if (!withGrad)
            {
                using var _ = no_grad();
                next = Step(x, t, ehs, cfg, false).PrevSample.detach();
            }
            else
            {
                var output = Step(x, t, ehs, cfg, Checkpointing);
                if (Mode == BackpropMode.Refl)
                {
                    // ReFL: the one-step x0 prediction stands in for the finished image.
                    var x0 = output.PredOriginalSample ?? throw new InvalidOperationException($"{sched.ClassName} returns no predicted x0, which ReFL needs");
                    x.Dispose();
                    return x0.MoveToOuterDisposeScope();
                }
                next = output.PrevSample;
            }
            x.Dispose();
            x = next.MoveToOuterDisposeScope();
        }
        return x;
    }

    Schedulers.SchedulerOutput Step(Tensor x, Tensor t, Tensor ehs, bool cfg, bool checkpoint)
    {
        // The checkpointed function gets ehs and t as context tensors: the graph keeps them alive until backward,
        // after this step's dispose scope has ended.
        var noisePred = checkpoint
            ? GradientCheckpoint.Apply((xs, ctx) => Guided(xs, ctx[0], ctx[1], cfg), x, ehs, t)
            : Guided(x, ehs, t, cfg);
        return _pipe.Scheduler.Step(noisePred, t, x);
    }

    /// <summary>The guided noise prediction eps_uncond + g (eps_cond - eps_uncond), or eps_cond without guidance.</summary>
    public Tensor Guided(Tensor x, Tensor ehs, Tensor t, bool cfg)
    {
        var xin = cfg ? cat(new[] { x, x }, 0) : x;
        xin = _pipe.Scheduler.ScaleModelInput(xin, t);
        var eps = _pipe.Unet.forward(xin.to(_pipe.DType), t.to(_pipe.Device), ehs).to(ScalarType.Float32);
        if (!cfg) return eps;
        var c = eps.chunk(2, 0);
        return c[0] + GuidanceScale * (c[1] - c[0]);
    }
}
