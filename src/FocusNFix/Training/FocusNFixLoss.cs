using FocusNFix.Masks;
using FocusNFix.Rewards;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>One micro-batch as the loss sees it: the fine-tuned result I (images in [0,1] and model space), the cached
/// original I0 (the same two), the masks M(I0) [B,1,H,W] in image space, and the prompts the reward reads.</summary>
public sealed record LossBatch(Tensor Images, Tensor ModelSpace, Tensor OriginalImages, Tensor OriginalModelSpace, Tensor Masks, IReadOnlyList<string> Prompts);

/// <summary>The loss's settings: lambda (0 for DRaFT), the constraint's norm, and whether it compares latents instead of pixels.</summary>
public sealed record LossSettings(double Lambda, ConstraintNorm Norm, bool LatentSpace)
{
    public static LossSettings FromConfig(TrainingConfig c) => new(
        c.Objective == "draft" ? 0.0 : c.Constraint.Lambda,
        c.Constraint.Norm == "per-pixel" ? ConstraintNorm.PerPixel : ConstraintNorm.Frobenius,
        c.Constraint.Space == "latent");
}

/// <summary>The scalar loss (batch mean) and the per-image reward and constraint it was made of.</summary>
public sealed record LossTerms(Tensor Loss, Tensor Reward, Tensor Constraint);

/// <summary>
/// The paper's objective, L = mean_b( -r(I_b, c_b) + lambda * || (1 - M(I0_b)) * (I_b - I0_b) || ), as one pure
/// function of a batch. The global-constraint baseline is this with all-zero masks, DRaFT with lambda = 0.
/// </summary>
public static class FocusNFixLoss
{
    public static LossTerms Compute(LossBatch batch, IReward reward, LossSettings settings)
    {
        using var scope = NewDisposeScope();
        var r = reward.Score(batch.Images, batch.Prompts);
        var constraint = settings.LatentSpace
            ? RegionConstraint.PerImage(batch.ModelSpace, batch.OriginalModelSpace,
                HeatmapMask.ResizeTo(batch.Masks, batch.ModelSpace.shape[2], batch.ModelSpace.shape[3]), settings.Norm)
            : RegionConstraint.PerImage(batch.Images, batch.OriginalImages, batch.Masks, settings.Norm);
        var loss = (-r + settings.Lambda * constraint).mean();
        return new LossTerms(loss.MoveToOuterDisposeScope(), r.MoveToOuterDisposeScope(), constraint.MoveToOuterDisposeScope());
    }
}
