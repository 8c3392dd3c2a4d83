using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>
/// Runs <paramref name="fn"/>(input, context) so that its activations are not kept for backward but recomputed there
/// (the pipelines pass their gradient checkpoint). Declared here so the models need not know who recomputes.
/// </summary>
public delegate Tensor CheckpointRunner(Func<Tensor, IReadOnlyList<Tensor>, Tensor> fn, Tensor input, params Tensor[] context);

/// <summary>A module whose forward can go through a <see cref="CheckpointRunner"/> while gradients are recorded.</summary>
public interface ICheckpointable
{
    /// <summary>Null: a plain forward that keeps its activations for backward.</summary>
    CheckpointRunner? Checkpoint { get; set; }
}

/// <summary>
/// Fine-grained activation checkpointing: every resnet and transformer of a model runs through one runner, so a
/// forward with gradients keeps only their inputs (the skips a UNet keeps anyway), not the normalised, activated and
/// attention tensors inside them. At 512 px those are most of the memory of a UNet or VAE-decoder backward.
/// </summary>
public static class ActivationCheckpoints
{
    /// <summary>Sets (or with null clears) the runner of every checkpointable module under <paramref name="root"/>; returns how many.</summary>
    public static int Set(nn.Module root, CheckpointRunner? runner)
    {
        int n = 0;
        foreach (var m in root.modules().Prepend(root))
            if (m is ICheckpointable c)
            {
                c.Checkpoint = runner;
                n++;
            }
        return n;
    }

    /// <summary>Whether a call should go through the runner: only when one is set and autograd records.</summary>
    internal static bool Active(this ICheckpointable m) => m.Checkpoint is not null && is_grad_enabled();
}
