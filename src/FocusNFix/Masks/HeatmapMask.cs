using System.Text.Json.Serialization;
using FocusNFix.IO;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FocusNFix.Masks;

/// <summary>
/// How a heatmap of problem regions becomes a mask (1 = may change, 0 = keep). JSON property names are
/// snake_case (<c>threshold</c>, <c>top_fraction</c>, <c>normalise</c>, <c>dilate_pixels</c>, <c>feather_sigma</c>).
/// </summary>
public sealed class MaskOptions
{
    /// <summary>
    /// Pixels whose (normalised) heatmap value is &gt;= this are in the mask. Default 0.5. Without
    /// <see cref="Normalise"/> it applies to the raw heatmap values.
    /// </summary>
    [JsonPropertyName("threshold")]
    public double Threshold { get; set; } = 0.5;

    /// <summary>
    /// If set, replaces <see cref="Threshold"/>: the round(p·H·W) highest pixels of each image are in the mask
    /// (every pixel tied with the last one is included too, so ties can add a few). 0 gives an empty mask.
    /// Default null.
    /// </summary>
    [JsonPropertyName("top_fraction")]
    public double? TopFraction { get; set; }

    /// <summary>
    /// Min-max normalise each image's heatmap to [0,1] before thresholding. Default true. A constant heatmap
    /// carries no localisation and normalises to all zeros (so it gives an empty mask unless Threshold &lt;= 0).
    /// </summary>
    [JsonPropertyName("normalise")]
    public bool Normalise { get; set; } = true;

    /// <summary>Square dilation radius r in pixels at the heatmap's resolution (a pixel grows to a (2r+1)² square). Default 2.</summary>
    [JsonPropertyName("dilate_pixels")]
    public int DilatePixels { get; set; } = 2;

    /// <summary>Gaussian feathering sigma in pixels, applied after dilation; 0 keeps the mask binary. Default 0.</summary>
    [JsonPropertyName("feather_sigma")]
    public double FeatherSigma { get; set; }

    /// <summary>Throws <see cref="InvalidInputException"/> naming the first option out of range.</summary>
    /// <param name="label">Put before an option's name in the error (a config file's "x.json: mask.").</param>
    public void Validate(string label = "mask option ")
    {
        if (!double.IsFinite(Threshold))
            throw new InvalidInputException($"{label}threshold = {Threshold}: expected a finite number");
        if (TopFraction is double p && !(p >= 0 && p <= 1))
            throw new InvalidInputException($"{label}top_fraction = {p}: expected a fraction in [0, 1]");
        if (DilatePixels < 0)
            throw new InvalidInputException($"{label}dilate_pixels = {DilatePixels}: expected an integer >= 0");
        if (!(FeatherSigma >= 0) || double.IsInfinity(FeatherSigma))
            throw new InvalidInputException($"{label}feather_sigma = {FeatherSigma}: expected a finite number >= 0");
    }
}

/// <summary>
/// Masks from heatmaps and the resampling the constraint needs. Masks are computed from the original image only,
/// so everything here runs without gradient and returns new tensors (the caller owns and disposes them) with the
/// input's device and floating dtype.
/// </summary>
public static class HeatmapMask
{
    /// <summary>heatmaps [B,1,H,W] or [B,H,W] -> masks [B,1,H,W] in [0,1] at the same resolution.</summary>
    public static Tensor FromHeatmap(Tensor heatmaps, MaskOptions options)
    {
        ArgumentNullException.ThrowIfNull(heatmaps);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        bool ok = heatmaps.dim() == 3 || (heatmaps.dim() == 4 && heatmaps.shape[1] == 1);
        if (!ok || heatmaps.numel() == 0)
            throw new ArgumentException($"heatmaps: expected [B,1,H,W] or [B,H,W], got {Shape(heatmaps)}");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long b = heatmaps.shape[0], h = heatmaps.shape[^2], w = heatmaps.shape[^1];
        var x = heatmaps.detach();
        if (!x.is_floating_point()) x = x.to(float32);
        if (x.isnan().any().item<bool>())
            throw new InvalidInputException($"heatmaps {Shape(heatmaps)} contain NaN");
        var flat = x.reshape(b, h * w);

        if (options.Normalise)
        {
            var lo = flat.amin(new long[] { 1 }, keepdim: true);
            var range = flat.amax(new long[] { 1 }, keepdim: true) - lo;
            var nonConstant = range.gt(0);
            flat = where(nonConstant, (flat - lo) / where(nonConstant, range, ones_like(range)), zeros_like(flat));
        }

        Tensor selected;
        if (options.TopFraction is double p)
        {
            long n = h * w, k = Math.Clamp((long)Math.Round(p * n, MidpointRounding.AwayFromZero), 0, n);
            if (k == 0) selected = zeros(b, n, dtype: ScalarType.Bool, device: flat.device);
            else
            {
                // kthvalue counts from the smallest; comparing with >= keeps ties deterministic (topk's tie order is not).
                var kth = flat.kthvalue(n - k + 1, 1, keepdim: true).values;
                selected = flat.ge(kth);
            }
        }
        else selected = flat.ge(options.Threshold);

        var mask = selected.to(x.dtype).reshape(b, 1, h, w);
        if (options.DilatePixels > 0) mask = Dilate(mask, options.DilatePixels);
        if (options.FeatherSigma > 0) mask = Feather(mask, options.FeatherSigma);
        return mask.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Square dilation (a max filter of size 2r+1, via max-pooling with stride 1): a single pixel becomes a
    /// (2r+1)x(2r+1) square, clipped at the image border. Works on soft masks too. Accepts [..., H, W].
    /// </summary>
    public static Tensor Dilate(Tensor mask, int radius)
    {
        ArgumentNullException.ThrowIfNull(mask);
        if (radius < 0) throw new ArgumentOutOfRangeException(nameof(radius), radius, "dilation radius must be >= 0");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var planes = Planes(mask);
        if (radius == 0) return planes.reshape(mask.shape).clone().MoveToOuterDisposeScope();
        long k = 2L * radius + 1;
        // max_pool2d pads with -inf, so the border behaves as if the image simply ended there.
        var y = F.max_pool2d(planes, new[] { k, k }, new[] { 1L, 1L }, new long[] { radius, radius });
        return y.reshape(mask.shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Gaussian feathering: max(mask, blur(mask)) with a normalised separable Gaussian of the given sigma
    /// (radius ceil(3·sigma)) and replicate padding at the border. Taking the max keeps every pixel that was 1
    /// at exactly 1, so feathering only adds a soft margin outside the region and never tightens the constraint
    /// inside it; values stay in [0,1]. sigma = 0 returns a copy. Accepts [..., H, W].
    /// </summary>
    public static Tensor Feather(Tensor mask, double sigma)
    {
        ArgumentNullException.ThrowIfNull(mask);
        if (!(sigma >= 0) || double.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "feather sigma must be a finite number >= 0");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var planes = Planes(mask);
        if (sigma == 0) return planes.reshape(mask.shape).clone().MoveToOuterDisposeScope();
        int r = Math.Max(1, (int)Math.Ceiling(3 * sigma));
        var kernel = GaussianKernel(r, sigma, planes.dtype, planes.device);
        var padded = F.pad(planes, new long[] { r, r, r, r }, PaddingModes.Replicate);
        var blurred = F.conv2d(F.conv2d(padded, kernel.reshape(1, 1, 1, -1)), kernel.reshape(1, 1, -1, 1));
        var y = maximum(planes, blurred.clamp(0, 1));
        return y.reshape(mask.shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Resamples [..., H, W] to [..., height, width]. Shrinking is an area average (adaptive average pooling:
    /// exact block means when the size divides, so a pixel-space mask becomes the kept fraction of each latent
    /// cell); growing is nearest (pixel-centre, "nearest-exact"). A dimension that shrinks while the other grows
    /// is area-averaged first, then enlarged.
    /// </summary>
    public static Tensor ResizeTo(Tensor mask, long height, long width)
    {
        ArgumentNullException.ThrowIfNull(mask);
        if (height <= 0 || width <= 0) throw new ArgumentOutOfRangeException(nameof(height), $"target size {height}x{width} must be positive");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var y = Planes(mask);
        long h = y.shape[2], w = y.shape[3];
        long h1 = Math.Min(height, h), w1 = Math.Min(width, w);
        if (h1 < h || w1 < w) y = F.adaptive_avg_pool2d(y, new[] { h1, w1 });
        if (h1 < height || w1 < width) y = F.interpolate(y, new[] { height, width }, mode: InterpolationMode.NearestExact);
        var shape = mask.shape.ToArray();
        shape[^2] = height;
        shape[^1] = width;
        return y.reshape(shape).clone().MoveToOuterDisposeScope();
    }

    /// <summary>Saves a mask [H,W], [1,H,W] or [1,1,H,W] with values in [0,1] as an 8-bit greyscale PNG, atomically, with optional text chunks.</summary>
    public static void SavePng(Tensor mask, string path, IReadOnlyList<(string Keyword, string Text)>? text = null)
    {
        ArgumentNullException.ThrowIfNull(mask);
        bool ok = mask.dim() >= 2 && mask.dim() <= 4 && mask.shape.Take((int)mask.dim() - 2).All(d => d == 1);
        if (!ok || mask.numel() == 0)
            throw new ArgumentException($"mask: expected [H,W], [1,H,W] or [1,1,H,W], got {Shape(mask)}");
        int h = (int)mask.shape[^2], w = (int)mask.shape[^1];
        byte[] bytes;
        using (var scope = NewDisposeScope())
        using (var noGrad = no_grad())
        {
            var u8 = mask.detach().reshape(h, w).to(float32).cpu().nan_to_num(0).clamp(0, 1).mul(255f).round().to(ScalarType.Byte).contiguous();
            bytes = u8.bytes.ToArray();
        }
        using var img = Image.LoadPixelData<L8>(bytes, w, h);
        Images.WritePng(img, path, text);
    }

    // [..., H, W] -> [N,1,H,W] floating (a view where possible), so per-plane filters apply to any layout.
    static Tensor Planes(Tensor mask)
    {
        if (mask.dim() < 2 || mask.numel() == 0)
            throw new ArgumentException($"mask: expected at least [H,W], got {Shape(mask)}");
        var planes = mask.detach().reshape(-1, 1, mask.shape[^2], mask.shape[^1]);
        return planes.is_floating_point() ? planes : planes.to(float32);
    }

    static Tensor GaussianKernel(int radius, double sigma, ScalarType dtype, Device device)
    {
        var k = new double[2 * radius + 1];
        for (int i = -radius; i <= radius; i++) k[i + radius] = Math.Exp(-0.5 * i * i / (sigma * sigma));
        double sum = k.Sum();
        for (int i = 0; i < k.Length; i++) k[i] /= sum;
        return tensor(k).to(dtype, device);
    }

    static string Shape(Tensor t) => $"[{string.Join(",", t.shape)}]";
}
