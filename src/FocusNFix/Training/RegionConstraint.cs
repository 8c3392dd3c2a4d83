using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>How the masked difference D = (1 - M) ⊙ (I - I0) of one image [C,H,W] is reduced to a number.</summary>
public enum ConstraintNorm
{
    /// <summary>
    /// The paper's form: the unsquared Frobenius norm sqrt(Σ_{c,h,w} D²). It grows with resolution
    /// (∝ sqrt(C·H·W) for a fixed per-pixel change), so lambda must be retuned when the image size changes.
    /// </summary>
    Frobenius,

    /// <summary>
    /// Root-mean-square over ALL C·H·W entries: sqrt(Σ D² / (C·H·W)) = Frobenius / sqrt(C·H·W). The divisor is the
    /// full entry count, not the number of kept pixels, so masking only removes terms (a larger mask never raises
    /// the value) and lambda keeps its meaning across resolutions.
    /// </summary>
    PerPixel,
}

/// <summary>The Focus-N-Fix preservation constraint ||(1 - M) ⊙ (I - I0)|| and its logging companions.</summary>
public static class RegionConstraint
{
    /// <summary>
    /// Per-image constraint values [B], differentiable w.r.t. <paramref name="images"/> (and the other arguments).
    /// images, originals [B,C,H,W] (pixels or latents, any range); masks [B,1,H,W] (broadcast over channels),
    /// [B,C,H,W], or a batch of 1 broadcast over B; 1 = may change. A null mask means all zeros: the global
    /// constraint that pulls the whole image to I0.
    /// The square root is taken safely: where Σ D² is exactly 0 (at the start of training, when the zero-initialised
    /// LoRA reproduces I0) the value is 0 and the gradient is 0, the minimum-norm subgradient, instead of naive
    /// sqrt's NaN; elsewhere value and gradient are the exact norm's, with no epsilon.
    /// </summary>
    public static Tensor PerImage(Tensor images, Tensor originals, Tensor? masks, ConstraintNorm norm)
    {
        CheckPair(images, originals);
        if (masks is not null) CheckMask(masks, images);
        using var scope = NewDisposeScope();
        var diff = images - originals;
        if (masks is not null) diff = diff * (1 - masks.to(diff.dtype));
        var sumSq = diff.square().sum(new long[] { 1, 2, 3 });
        if (norm == ConstraintNorm.PerPixel)
            sumSq = sumSq / (double)(images.shape[1] * images.shape[2] * images.shape[3]);
        else if (norm != ConstraintNorm.Frobenius)
            throw new ArgumentOutOfRangeException(nameof(norm), norm, "unknown constraint norm");
        return SafeSqrt(sumSq).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Mean |I - I0| per entry inside the mask (weighted by M) and outside it (weighted by 1 - M), per image [B],
    /// for logging: Σ w·|D| / (C·Σ w) with w broadcast over channels. An empty side (Σ w = 0) reports 0, never NaN.
    /// Detached from the graph.
    /// </summary>
    public static (Tensor Inside, Tensor Outside) MeanChange(Tensor images, Tensor originals, Tensor masks)
    {
        CheckPair(images, originals);
        ArgumentNullException.ThrowIfNull(masks);
        CheckMask(masks, images);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var absDiff = (images.detach() - originals.detach()).abs();
        var inside = masks.detach().to(absDiff.dtype).expand_as(absDiff);
        var outside = 1 - inside;
        var dims = new long[] { 1, 2, 3 };
        Tensor WeightedMean(Tensor w)
        {
            var total = w.sum(dims);
            return where(total.gt(0), (w * absDiff).sum(dims) / where(total.gt(0), total, ones_like(total)), zeros_like(total));
        }
        var result = (WeightedMean(inside), WeightedMean(outside));
        result.Item1.MoveToOuterDisposeScope();
        result.Item2.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>
    /// PSNR in dB (images in [0,1]) of each image against its original over the pixels outside the mask, weighted by
    /// 1 - M: +Infinity for identical pixels, NaN when nothing is outside. Detached, on the CPU as doubles.
    /// </summary>
    public static double[] PsnrOutside(Tensor images, Tensor originals, Tensor masks)
    {
        CheckPair(images, originals);
        CheckMask(masks, images);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var sq = (images.detach() - originals.detach()).to(ScalarType.Float64).square();
        var w = (1 - masks.detach().to(ScalarType.Float64)).expand_as(sq);
        var dims = new long[] { 1, 2, 3 };
        var weight = w.sum(dims).cpu().data<double>().ToArray();
        var err = (w * sq).sum(dims).cpu().data<double>().ToArray();
        return weight.Select((n, i) => n <= 0 ? double.NaN : err[i] == 0 ? double.PositiveInfinity : -10 * Math.Log10(err[i] / n)).ToArray();
    }

    // sqrt with value 0 and gradient 0 where x == 0: the unused branch of `where` sees 1, so no NaN can leak in.
    static Tensor SafeSqrt(Tensor x)
    {
        var positive = x.gt(0);
        return where(positive, where(positive, x, ones_like(x)).sqrt(), zeros_like(x));
    }

    static void CheckPair(Tensor images, Tensor originals)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(originals);
        if (images.dim() != 4 || !images.shape.SequenceEqual(originals.shape))
            throw new ArgumentException($"images {Shape(images)} and originals {Shape(originals)}: expected the same [B,C,H,W] shape");
    }

    static void CheckMask(Tensor masks, Tensor images)
    {
        var s = masks.shape;
        bool ok = masks.dim() == 4 && (s[0] == images.shape[0] || s[0] == 1) && (s[1] == 1 || s[1] == images.shape[1])
                  && s[2] == images.shape[2] && s[3] == images.shape[3];
        if (!ok)
            throw new ArgumentException($"masks {Shape(masks)}: expected [B,1,H,W] matching images {Shape(images)} " +
                                        "(resize masks to the constraint's grid with HeatmapMask.ResizeTo)");
    }

    static string Shape(Tensor t) => $"[{string.Join(",", t.shape)}]";
}
