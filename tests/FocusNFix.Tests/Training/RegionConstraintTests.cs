using FocusNFix.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

public class RegionConstraintTests
{
    const int B = 2, C = 3, H = 4, W = 5;

    static (Tensor images, Tensor originals, Tensor masks) Case(int seed = 1)
    {
        var g = new torch.Generator((ulong)seed);
        var originals = rand(new long[] { B, C, H, W }, dtype: float64, generator: g);
        var images = originals + randn(new long[] { B, C, H, W }, dtype: float64, generator: g) * 0.1;
        var masks = rand(new long[] { B, 1, H, W }, dtype: float64, generator: g).gt(0.6).to(float64);
        return (images, originals, masks);
    }

    // Hand computation with plain loops: sqrt of the sum of ((1 - m) * d)^2, optionally over C*H*W.
    static double[] Expected(Tensor images, Tensor originals, Tensor? masks, bool perPixel)
    {
        var i = images.data<double>().ToArray();
        var o = originals.data<double>().ToArray();
        var m = masks?.data<double>().ToArray();
        var result = new double[B];
        for (int b = 0; b < B; b++)
        {
            double s = 0;
            for (int c = 0; c < C; c++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++)
                    {
                        int k = ((b * C + c) * H + y) * W + x;
                        double keep = m is null ? 1 : 1 - m[(b * H + y) * W + x];
                        double d = keep * (i[k] - o[k]);
                        s += d * d;
                    }
            result[b] = Math.Sqrt(perPixel ? s / (C * H * W) : s);
        }
        return result;
    }

    [Theory]
    [InlineData(ConstraintNorm.Frobenius)]
    [InlineData(ConstraintNorm.PerPixel)]
    public void ValuesEqualHandComputation(ConstraintNorm norm)
    {
        var (images, originals, masks) = Case();
        using var masked = RegionConstraint.PerImage(images, originals, masks, norm);
        using var global = RegionConstraint.PerImage(images, originals, null, norm);
        Assert.Equal(new long[] { B }, masked.shape);
        var expectedMasked = Expected(images, originals, masks, norm == ConstraintNorm.PerPixel);
        var expectedGlobal = Expected(images, originals, null, norm == ConstraintNorm.PerPixel);
        for (int b = 0; b < B; b++)
        {
            Assert.Equal(expectedMasked[b], masked[b].item<double>(), 12);
            Assert.Equal(expectedGlobal[b], global[b].item<double>(), 12);
        }
    }

    [Fact]
    public void GlobalConstraintIsTheFullImageNormAndPerPixelIsItsRms()
    {
        var (images, originals, _) = Case(2);
        using var zerosMask = zeros(B, 1, H, W, dtype: float64);
        using var global = RegionConstraint.PerImage(images, originals, null, ConstraintNorm.Frobenius);
        using var zeroMasked = RegionConstraint.PerImage(images, originals, zerosMask, ConstraintNorm.Frobenius);
        using var perPixel = RegionConstraint.PerImage(images, originals, null, ConstraintNorm.PerPixel);
        using var norms = (images - originals).reshape(B, -1).norm(1);
        for (int b = 0; b < B; b++)
        {
            Assert.Equal(norms[b].item<double>(), global[b].item<double>(), 12);
            Assert.Equal(global[b].item<double>(), zeroMasked[b].item<double>(), 12);
            Assert.Equal(global[b].item<double>() / Math.Sqrt(C * H * W), perPixel[b].item<double>(), 12);
        }
    }

    [Fact]
    public void MaskedPixelsDoNotContribute()
    {
        var (images, originals, masks) = Case(3);
        using var before = RegionConstraint.PerImage(images, originals, masks, ConstraintNorm.Frobenius);
        using var changedInside = images + masks * 100;  // change only where the mask allows it
        using var after = RegionConstraint.PerImage(changedInside, originals, masks, ConstraintNorm.Frobenius);
        Assert.Equal(before.data<double>().ToArray(), after.data<double>().ToArray());

        using var allMask = ones(B, 1, H, W, dtype: float64);
        using var free = RegionConstraint.PerImage(images, originals, allMask, ConstraintNorm.Frobenius);
        Assert.Equal(new double[] { 0, 0 }, free.data<double>().ToArray());

        // A batch-1 mask broadcasts over the batch.
        using var shared = masks[0..1];
        using var broadcast = RegionConstraint.PerImage(images, originals, shared, ConstraintNorm.PerPixel);
        using var explicitMask = shared.expand(B, 1, H, W);
        using var expanded = RegionConstraint.PerImage(images, originals, explicitMask, ConstraintNorm.PerPixel);
        Assert.Equal(expanded.data<double>().ToArray(), broadcast.data<double>().ToArray());
    }

    [Theory]
    [InlineData(ConstraintNorm.Frobenius, true)]
    [InlineData(ConstraintNorm.Frobenius, false)]
    [InlineData(ConstraintNorm.PerPixel, true)]
    [InlineData(ConstraintNorm.PerPixel, false)]
    public void GradientIsFiniteWhenImagesEqualOriginals(ConstraintNorm norm, bool withMask)
    {
        using var scope = NewDisposeScope();
        var originals = rand(B, C, H, W);
        var images = originals.clone().requires_grad_(true);
        var masks = withMask ? rand(B, 1, H, W).gt(0.5).to(float32) : null;
        var value = RegionConstraint.PerImage(images, originals, masks, norm);
        Assert.Equal(new float[] { 0, 0 }, value.data<float>().ToArray());
        value.sum().backward();
        Assert.True(images.grad!.isfinite().all().item<bool>());
        Assert.Equal(0f, images.grad!.abs().max().item<float>());
    }

    [Fact]
    public void GradientAwayFromZeroIsTheNormalisedMaskedDifference()
    {
        using var scope = NewDisposeScope();
        var (images0, originals, masks) = Case(4);
        var images = images0.clone().requires_grad_(true);
        // Image 1 equals its original outside the mask: the safe root must not disturb image 0's gradient.
        using (no_grad()) images[1].copy_(originals[1] + masks[1] * 0.3);
        RegionConstraint.PerImage(images, originals, masks, ConstraintNorm.Frobenius).sum().backward();
        var d = (images.detach() - originals) * (1 - masks);
        var expected0 = d[0] / d[0].norm();
        Assert.True(allclose(images.grad![0], expected0, rtol: 0, atol: 1e-12));
        Assert.Equal(0.0, images.grad![1].abs().max().item<double>());
    }

    [Fact]
    public void MeanChangeSeparatesInsideAndOutside()
    {
        using var scope = NewDisposeScope();
        var originals = zeros(1, 2, 2, 2);
        // Channel 0 changes by 1 at (0,0) and by 3 at (1,1); channel 1 by 2 at (0,1).
        var images = tensor(new float[] { 1, 0, 0, 3, 0, 2, 0, 0 }).reshape(1, 2, 2, 2);
        var masks = tensor(new float[] { 1, 0, 0, 0 }).reshape(1, 1, 2, 2);
        var (inside, outside) = RegionConstraint.MeanChange(images, originals, masks);
        Assert.Equal(1f / 2, inside.item<float>(), 6);         // (1 + 0) / (1 pixel * 2 channels)
        Assert.Equal(5f / 6, outside.item<float>(), 6);        // (0 + 3 + 2) / (3 pixels * 2 channels)

        var empty = zeros(1, 1, 2, 2);
        var (emptyInside, allOutside) = RegionConstraint.MeanChange(images, originals, empty);
        Assert.Equal(0f, emptyInside.item<float>());
        Assert.Equal(6f / 8, allOutside.item<float>(), 6);
        var (allInside, emptyOutside) = RegionConstraint.MeanChange(images, originals, ones(1, 1, 2, 2));
        Assert.Equal(6f / 8, allInside.item<float>(), 6);
        Assert.Equal(0f, emptyOutside.item<float>());
    }

    [Fact]
    public void ShapeMismatchesAreRejected()
    {
        using var scope = NewDisposeScope();
        var a = rand(2, 3, 8, 8);
        Assert.Throws<ArgumentException>(() => RegionConstraint.PerImage(a, rand(2, 3, 8, 4), null, ConstraintNorm.Frobenius));
        var e = Assert.Throws<ArgumentException>(() => RegionConstraint.PerImage(a, a, rand(2, 1, 4, 4), ConstraintNorm.Frobenius));
        Assert.Contains("ResizeTo", e.Message);
    }
}
