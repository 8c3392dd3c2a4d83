using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FocusNFix.Evaluation;

/// <summary>
/// Preservation metrics between a fine-tuned image and the original. Images are [B,C,H,W] in [0,1] (data range 1);
/// region masks are [B,1,H,W] (or a batch of 1 shared by all images) with 1 = pixel counted; a soft mask acts as
/// per-pixel weights. Results are per image. Everything is computed in float64 without gradient.
/// </summary>
public static class ImageMetrics
{
    const int SsimWindow = 11;
    const double SsimSigma = 1.5, K1 = 0.01, K2 = 0.03;

    /// <summary>
    /// PSNR in dB, 10·log10(1 / MSE), with the MSE over every channel of the region's pixels (all pixels when region
    /// is null). Identical images give +Infinity (aggregate with a median, not a mean); an empty region gives NaN.
    /// </summary>
    public static double[] Psnr(Tensor a, Tensor b, Tensor? region = null)
    {
        CheckPair(a, b);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, y) = (a.detach().to(float64), b.detach().to(float64));
        var sq = (x - y).square();
        var w = Weights(region, a, sq.shape[2], sq.shape[3]);
        var mse = (sq * w).sum(new long[] { 1, 2, 3 }) / (w.sum(new long[] { 1, 2, 3 }) * a.shape[1]);
        var psnr = mse.reciprocal().log10() * 10;  // mse 0 -> +Inf; empty region (0/0) -> NaN
        return psnr.cpu().data<double>().ToArray();
    }

    /// <summary>
    /// SSIM (Wang, Bovik, Sheikh, Simoncelli 2004): Gaussian window 11x11 with sigma 1.5, K1 = 0.01, K2 = 0.03, data
    /// range 1, applied per channel as a 'valid' filter (no padding, as in the paper's reference code, so the SSIM map
    /// is (H-10)x(W-10), aligned with pixel (5,5)); the result is the mean of the map over channels and positions.
    /// With a region, the mean is over the map positions whose centre pixel is in the region (pixels within 5 of the
    /// border have no map value and are not counted); a region with no such pixel gives NaN. Needs H, W >= 11.
    /// </summary>
    public static double[] Ssim(Tensor a, Tensor b, Tensor? region = null)
    {
        CheckPair(a, b);
        long h = a.shape[2], w = a.shape[3], c = a.shape[1];
        if (h < SsimWindow || w < SsimWindow)
            throw new ArgumentException($"SSIM needs images of at least {SsimWindow}x{SsimWindow}, got {h}x{w}");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = a.detach().to(float64);
        var y = b.detach().to(float64);
        var g = GaussianWindow(x.device).expand(c, 1, SsimWindow, SsimWindow).contiguous();
        Tensor Filter(Tensor t) => F.conv2d(t, g, groups: c);

        var muX = Filter(x);
        var muY = Filter(y);
        var varX = Filter(x * x) - muX * muX;
        var varY = Filter(y * y) - muY * muY;
        var cov = Filter(x * y) - muX * muY;
        double c1 = K1 * K1, c2 = K2 * K2;
        var map = (2 * muX * muY + c1) * (2 * cov + c2) / ((muX * muX + muY * muY + c1) * (varX + varY + c2));

        int half = SsimWindow / 2;
        var weights = Weights(region, a, h, w)[.., .., half..(int)(h - half), half..(int)(w - half)].expand_as(map);
        var ssim = (map * weights).sum(new long[] { 1, 2, 3 }) / weights.sum(new long[] { 1, 2, 3 });
        return ssim.cpu().data<double>().ToArray();
    }

    /// <summary>
    /// Of the pixels that changed (|a - b| &gt; threshold in any channel), the share that lies inside the mask
    /// (soft masks weight each changed pixel by its value). NaN when no pixel changed. The default threshold is one
    /// 8-bit grey level.
    /// </summary>
    public static double[] ChangedShareInside(Tensor a, Tensor b, Tensor masks, double threshold = 1.0 / 255)
    {
        CheckPair(a, b);
        ArgumentNullException.ThrowIfNull(masks);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var diff = (a.detach().to(float64) - b.detach().to(float64)).abs();
        var changed = diff.gt(threshold).any(1, keepdim: true).to(float64);  // [B,1,H,W]
        var w = Weights(masks, a, a.shape[2], a.shape[3]);
        var share = (changed * w).sum(new long[] { 1, 2, 3 }) / changed.sum(new long[] { 1, 2, 3 });  // 0/0 -> NaN
        return share.cpu().data<double>().ToArray();
    }

    // Region weights [B,1,H,W] float64 (all ones for a null region).
    static Tensor Weights(Tensor? region, Tensor images, long h, long w)
    {
        long batch = images.shape[0];
        if (region is null) return ones(batch, 1, h, w, dtype: float64, device: images.device);
        bool ok = region.dim() == 4 && (region.shape[0] == batch || region.shape[0] == 1) && region.shape[1] == 1
                  && region.shape[2] == h && region.shape[3] == w;
        if (!ok)
            throw new ArgumentException($"region mask [{string.Join(",", region.shape)}]: expected [{batch},1,{h},{w}]");
        return region.detach().to(float64, images.device).expand(batch, 1, h, w);
    }

    static Tensor GaussianWindow(Device device)
    {
        var k = new double[SsimWindow];
        int half = SsimWindow / 2;
        for (int i = 0; i < SsimWindow; i++) k[i] = Math.Exp(-0.5 * (i - half) * (i - half) / (SsimSigma * SsimSigma));
        double sum = k.Sum();
        var g = tensor(k.Select(v => v / sum).ToArray(), float64, device);
        return outer(g, g).reshape(1, 1, SsimWindow, SsimWindow);
    }

    static void CheckPair(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.dim() != 4 || !a.shape.SequenceEqual(b.shape) || a.numel() == 0)
            throw new ArgumentException($"images [{string.Join(",", a.shape)}] and [{string.Join(",", b.shape)}]: expected the same non-empty [B,C,H,W] shape");
    }
}
