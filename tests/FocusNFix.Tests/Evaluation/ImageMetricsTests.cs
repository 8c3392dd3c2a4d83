using FocusNFix.Evaluation;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Evaluation;

public class ImageMetricsTests
{
    static Tensor Img(int b, int c, int h, int w, params float[] values) => tensor(values).reshape(b, c, h, w);

    [Fact]
    public void PsnrEqualsHandComputation()
    {
        using var scope = NewDisposeScope();
        var a = zeros(2, 3, 4, 4);
        var b = a.clone();
        b[0, 1, 2, 3] = tensor(0.5f);          // image 0: one entry off by 0.5 -> MSE 0.25 / 48
        b[1] = tensor(0.1f);                   // image 1: every entry off by 0.1 -> MSE 0.01
        var psnr = ImageMetrics.Psnr(a, b);
        Assert.Equal(10 * Math.Log10(48 / 0.25), psnr[0], 6);
        Assert.Equal(20.0, psnr[1], 5);

        var same = ImageMetrics.Psnr(a, a.clone());
        Assert.True(double.IsPositiveInfinity(same[0]) && double.IsPositiveInfinity(same[1]));
    }

    [Fact]
    public void PsnrOverARegionCountsOnlyItsPixels()
    {
        using var scope = NewDisposeScope();
        var a = zeros(1, 3, 4, 4);
        var b = a.clone();
        b[0, .., 0, 0] = tensor(0.5f);          // pixel (0,0) changed in all channels
        var region = zeros(1, 1, 4, 4);
        region[0, 0, 0, 0..2] = tensor(1f);     // (0,0) and (0,1)
        // MSE = 3 * 0.25 / (2 pixels * 3 channels) = 0.125
        Assert.Equal(10 * Math.Log10(8), ImageMetrics.Psnr(a, b, region)[0], 6);

        var outside = 1 - region;
        outside[0, 0, 0, 0] = tensor(0f);
        Assert.True(double.IsPositiveInfinity(ImageMetrics.Psnr(a, b, outside)[0]));
        Assert.True(double.IsNaN(ImageMetrics.Psnr(a, b, zeros(1, 1, 4, 4))[0]));
    }

    // Reference SSIM with plain loops: 11x11 Gaussian (sigma 1.5) at every position where the window fits.
    static double ReferenceSsim(double[,,] x, double[,,] y, double[,]? region)
    {
        int c = x.GetLength(0), h = x.GetLength(1), w = x.GetLength(2);
        var g = new double[11, 11];
        double gs = 0;
        for (int i = 0; i < 11; i++)
            for (int j = 0; j < 11; j++) gs += g[i, j] = Math.Exp(-((i - 5) * (i - 5) + (j - 5) * (j - 5)) / (2 * 1.5 * 1.5));
        double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03, total = 0, count = 0;
        for (int ch = 0; ch < c; ch++)
            for (int cy = 5; cy < h - 5; cy++)
                for (int cx = 5; cx < w - 5; cx++)
                {
                    double weight = region is null ? 1 : region[cy, cx];
                    if (weight == 0) continue;
                    double mx = 0, my = 0;
                    for (int i = 0; i < 11; i++)
                        for (int j = 0; j < 11; j++)
                        {
                            double k = g[i, j] / gs;
                            mx += k * x[ch, cy + i - 5, cx + j - 5];
                            my += k * y[ch, cy + i - 5, cx + j - 5];
                        }
                    double vx = 0, vy = 0, cov = 0;
                    for (int i = 0; i < 11; i++)
                        for (int j = 0; j < 11; j++)
                        {
                            double k = g[i, j] / gs, dx = x[ch, cy + i - 5, cx + j - 5] - mx, dy = y[ch, cy + i - 5, cx + j - 5] - my;
                            vx += k * dx * dx;
                            vy += k * dy * dy;
                            cov += k * dx * dy;
                        }
                    double s = (2 * mx * my + c1) * (2 * cov + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
                    total += weight * s;
                    count += weight;
                }
        return total / count;
    }

    static double[,,] ToArray(Tensor t)
    {
        int c = (int)t.shape[0], h = (int)t.shape[1], w = (int)t.shape[2];
        var v = t.to(float64).contiguous().data<double>().ToArray();
        var r = new double[c, h, w];
        Buffer.BlockCopy(v, 0, r, 0, v.Length * sizeof(double));
        return r;
    }

    [Fact]
    public void SsimMatchesAHandRolledReference()
    {
        using var scope = NewDisposeScope();
        var g = new torch.Generator(11);
        var a = rand(new long[] { 2, 3, 16, 16 }, generator: g);
        var b = (a + randn(new long[] { 2, 3, 16, 16 }, generator: g) * 0.1).clamp(0, 1);
        var region = rand(new long[] { 2, 1, 16, 16 }, generator: g).gt(0.5).to(float32);
        var ssim = ImageMetrics.Ssim(a, b);
        var ssimRegion = ImageMetrics.Ssim(a, b, region);
        for (int i = 0; i < 2; i++)
        {
            var expected = ReferenceSsim(ToArray(a[i]), ToArray(b[i]), null);
            Assert.Equal(expected, ssim[i], 10);
            var r = region[i, 0].to(float64).contiguous().data<double>().ToArray();
            var r2 = new double[16, 16];
            Buffer.BlockCopy(r, 0, r2, 0, r.Length * sizeof(double));
            Assert.Equal(ReferenceSsim(ToArray(a[i]), ToArray(b[i]), r2), ssimRegion[i], 10);
            Assert.True(ssim[i] > 0.3 && ssim[i] < 0.99, $"{ssim[i]}");
        }
    }

    [Fact]
    public void SsimKnownValues()
    {
        using var scope = NewDisposeScope();
        var a = rand(1, 3, 16, 16);
        Assert.Equal(1.0, ImageMetrics.Ssim(a, a.clone())[0], 12);
        // Constant images p and q: no variance, so SSIM = (2pq + C1) / (p² + q² + C1).
        var p = full(1, 1, 12, 12, 0.5f);
        var q = full(1, 1, 12, 12, 0.6f);
        Assert.Equal((2 * 0.5 * 0.6 + 1e-4) / (0.25 + 0.36 + 1e-4), ImageMetrics.Ssim(p, q)[0], 6);
        // A region that only covers the 5-pixel border has no SSIM map position.
        var border = ones(1, 1, 16, 16);
        border[0, 0, 5..11, 5..11] = tensor(0f);
        Assert.True(double.IsNaN(ImageMetrics.Ssim(a, a, border)[0]));
        Assert.Throws<ArgumentException>(() => ImageMetrics.Ssim(rand(1, 3, 10, 16), rand(1, 3, 10, 16)));
    }

    [Fact]
    public void ChangedShareInsideCountsChangedPixels()
    {
        using var scope = NewDisposeScope();
        var a = zeros(2, 3, 3, 3);
        var b = a.clone();
        b[0, 0, 0, 0] = tensor(0.5f);              // inside, one channel only
        b[0, 2, 1, 1] = tensor(-0.2f);             // inside
        b[0, 1, 2, 2] = tensor(0.3f);              // outside
        b[0, .., 2, 0] = tensor(0.5f / 255);       // below the threshold: not a change
        var masks = zeros(2, 1, 3, 3);
        masks[0, 0, 0..2, 0..2] = tensor(1f);
        var share = ImageMetrics.ChangedShareInside(a, b, masks);
        Assert.Equal(2.0 / 3, share[0], 12);
        Assert.True(double.IsNaN(share[1]));     // image 1 did not change

        var strict = ImageMetrics.ChangedShareInside(a, b, masks, threshold: 0.25);
        Assert.Equal(0.5, strict[0], 12);           // (0,0) inside and (2,2) outside remain
    }

    [Fact]
    public void MismatchedShapesAreRejected()
    {
        using var scope = NewDisposeScope();
        var a = rand(1, 3, 16, 16);
        Assert.Throws<ArgumentException>(() => ImageMetrics.Psnr(a, rand(1, 3, 16, 8)));
        Assert.Throws<ArgumentException>(() => ImageMetrics.Psnr(a, a, ones(1, 1, 8, 8)));
        Assert.Throws<ArgumentException>(() => ImageMetrics.ChangedShareInside(a, a, ones(1, 3, 16, 16)));
    }
}
