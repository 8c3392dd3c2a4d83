using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>What one <see cref="IScheduler.Step"/> returns (diffusers' SchedulerOutput / DDIMSchedulerOutput).</summary>
/// <param name="PrevSample">x_{t-1}.</param>
/// <param name="PredOriginalSample">The x0 estimate, where the scheduler has one (null for PNDM).</param>
public sealed record SchedulerOutput(Tensor PrevSample, Tensor? PredOriginalSample);

/// <summary>
/// A diffusers 0.27.2 sampling scheduler. Usage is the pipeline loop:
/// <c>SetTimesteps(n); x *= InitNoiseSigma; foreach t in Timesteps: eps = unet(ScaleModelInput(x, t), t); x = Step(eps, t, x).PrevSample</c>.
/// Step is built from tensor ops only, so it is differentiable w.r.t. the model output and the sample.
/// </summary>
public interface IScheduler
{
    /// <summary>The diffusers <c>_class_name</c>, e.g. "DDIMScheduler".</summary>
    string ClassName { get; }

    /// <summary>Computes the inference timesteps and resets any multistep state (PNDM ets, DPM history, step index).</summary>
    void SetTimesteps(int numInferenceSteps);

    /// <summary>1-d; int64 for DDIM/DDPM/PNDM/DPM++, float32 for Euler and Euler-ancestral (as diffusers).</summary>
    Tensor Timesteps { get; }

    /// <summary>The factor the initial Gaussian noise is multiplied by.</summary>
    double InitNoiseSigma { get; }

    /// <summary>Scales the model input for the given timestep (a 0-d element of <see cref="Timesteps"/>).</summary>
    Tensor ScaleModelInput(Tensor sample, Tensor timestep);

    /// <summary>
    /// <see cref="ScaleModelInput(Tensor, Tensor)"/> at an explicit position in the schedule (timestep = Timesteps[stepIndex]).
    /// Pure: it reads no step counter and changes none, so a checkpoint's recompute in backward may call it again.
    /// </summary>
    Tensor ScaleModelInput(Tensor sample, Tensor timestep, int stepIndex);

    /// <summary>
    /// One denoising step. <paramref name="noise"/> is the explicit variance noise for stochastic steps
    /// (DDPM, Euler-ancestral, DDIM with eta &gt; 0); without it the noise is drawn from <paramref name="generator"/>.
    /// </summary>
    SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, Generator? generator = null, Tensor? noise = null);

    /// <summary>The forward process q(x_t | x_0) at the given timesteps (one per batch row, or a 0-d one for all).</summary>
    Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps);

    /// <summary>float32 cumulative product of (1 - beta) over the training schedule.</summary>
    Tensor AlphasCumprod { get; }
}
