using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>How a gradient saliency map is computed.</summary>
public enum SaliencyMethod
{
    /// <summary>Σ_c x_c · ∂(-R)/∂x_c per pixel: each pixel's first-order contribution to lowering the reward (black is the baseline).</summary>
    GradientTimesInput,
    /// <summary>SmoothGrad (Smilkov et al. 2017): Σ_c |mean_n ∂(-R)/∂x_c (x + ε_n)|, ε_n ~ N(0, noise²): where the reward is sensitive.</summary>
    SmoothGrad,
}

/// <summary>Which attributions a gradient-times-input map keeps.</summary>
public enum SaliencyDirection
{
    /// <summary>Only pixels whose content lowers the reward (the positive part of the attribution to -R): "where the problem is".</summary>
    Lowering,
    /// <summary>Both signs: pixels that lower or raise the reward.</summary>
    Absolute,
}

/// <summary>
/// Saliency of any differentiable <see cref="IReward"/> as a heatmap: gradient x input or SmoothGrad.
/// <para>
/// The gradient is taken of the NEGATED reward, so what the map shows is what lowers the reward: for a
/// safety reward the unsafe region, for an aesthetic reward what spoils the picture. With
/// <see cref="SaliencyDirection.Lowering"/> (the default) gradient x input keeps only that side; SmoothGrad's
/// map is a magnitude and has no side. Maps are summed over colour channels, optionally blurred (a Gaussian
/// of <c>blurSigma</c> pixels: raw gradients are speckled at pixel scale), and divided by each image's maximum,
/// so they lie in [0,1] with 1 at the most salient pixel (an image with no attribution gives all zeros).
/// </para>
/// The map carries no gradient. Each call runs the reward forward and backward once (SmoothGrad: <c>samples</c> times).
/// </summary>
public sealed class GradientSaliency : IHeatmapSource
{
    public IReward Reward { get; }
    public SaliencyMethod Method { get; }
    public SaliencyDirection Direction { get; }
    public int Samples { get; }
    public double Noise { get; }
    public double BlurSigma { get; }
    public long Seed { get; }
    readonly bool _ownsReward;

    /// <param name="samples">SmoothGrad: noisy copies per image</param>
    /// <param name="noise">SmoothGrad: the noise's standard deviation, in units of the [0,1] pixel range (the paper suggests 0.1-0.2)</param>
    /// <param name="seed">SmoothGrad: seed of the noise, so maps are reproducible</param>
    /// <param name="ownsReward">true when the source loaded the reward itself and disposes it with itself</param>
    public GradientSaliency(IReward reward, SaliencyMethod method = SaliencyMethod.GradientTimesInput,
        SaliencyDirection direction = SaliencyDirection.Lowering, int samples = 16, double noise = 0.15, double blurSigma = 0.0, long seed = 0,
        bool ownsReward = false)
    {
        Reward = reward ?? throw new ArgumentNullException(nameof(reward));
        if (samples < 1) throw new InvalidInputException($"SmoothGrad samples must be at least 1, got {samples}");
        if (!(noise >= 0) || !double.IsFinite(noise)) throw new InvalidInputException($"SmoothGrad noise must be >= 0, got {noise}");
        HeatmapOps.CheckSigma(blurSigma);
        Method = method;
        Direction = direction;
        Samples = samples;
        Noise = noise;
        BlurSigma = blurSigma;
        Seed = seed;
        _ownsReward = ownsReward;
    }

    /// <summary>Moves the reward whose saliency this is.</summary>
    public void To(Device device) => Reward.To(device);

    public void Dispose()
    {
        if (_ownsReward) (Reward as IDisposable)?.Dispose();
    }

    public Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys)
    {
        RewardInputs.CheckImages(images, $"{Reward.Name} saliency");
        HeatmapKey.CheckBatch(images, keys, $"{Reward.Name} saliency");
        var prompts = HeatmapKey.Prompts(keys);
        using var scope = NewDisposeScope();
        var x = images.detach();
        Tensor map;
        if (Method == SaliencyMethod.GradientTimesInput)
        {
            var a = (x * GradientOfNegated(x, prompts)).sum(1, keepdim: true);
            map = Direction == SaliencyDirection.Lowering ? a.relu() : a.abs();
        }
        else
        {
            var gen = new Generator((ulong)Seed);
            Tensor? sum = null;
            for (int i = 0; i < Samples; i++)
            {
                using var inner = NewDisposeScope();
                var eps = torch.randn(x.shape, dtype: float32, generator: gen).to(x.dtype, x.device) * Noise;
                var g = GradientOfNegated(x + eps, prompts);
                var next = sum is null ? g : sum + g;
                sum?.Dispose();
                sum = next.MoveToOuterDisposeScope();
            }
            map = (sum! / Samples).abs().sum(1, keepdim: true);
        }
        return HeatmapOps.Finish(map, BlurSigma).detach().To(images).MoveToOuterDisposeScope();
    }

    /// <summary>∂(-R)/∂x [B,3,H,W] at <paramref name="x"/>, whatever grad mode the caller is in.</summary>
    Tensor GradientOfNegated(Tensor x, IReadOnlyList<string> prompts)
    {
        using var scope = NewDisposeScope();
        using var _ = enable_grad();
        var input = x.detach().clone().requires_grad_(true);
        var r = Reward.Score(input, prompts);
        if (r.dim() != 1 || r.shape[0] != x.shape[0])
            throw new InvalidInputException($"reward '{Reward.Name}' returned [{string.Join(",", r.shape)}] for {x.shape[0]} images; expected one score per image");
        if (!r.requires_grad)
            throw new InvalidInputException($"reward '{Reward.Name}' is not differentiable with respect to the images, so it has no saliency");
        var g = torch.autograd.grad(new[] { (-r).sum() }, new[] { input })[0];
        return g.to(x.dtype, x.device).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Grad-CAM (Selvaraju et al. 2017) on a CLIP vision tower's patch tokens, for rewards that expose them
/// (<see cref="IVisionTokenReward"/>: the safety, aesthetic, CLIPScore and PickScore rewards).
/// <para>
/// With A the hidden state [B, 1+g², C] at <c>layer</c> (class token dropped) and G = ∂(-R)/∂A, each channel
/// weight is α_c = mean over patches of G_c, and the map is ReLU(Σ_c α_c A_c) on the g x g patch grid: the
/// patches whose features push the reward down. It is upsampled bilinearly onto the crop the tower saw and
/// placed back into the full image (zero outside a center crop), optionally blurred, and divided by each
/// image's maximum.
/// </para>
/// <para>
/// <c>layer</c> indexes the hidden states: 0 is the embedding output (after pre_layrnorm), i the output of
/// encoder layer i, negative counts from the end. The default -2 is the input of the last encoder layer. The
/// last hidden state itself is refused: CLIP pools only the class token of it, so its patch tokens have no gradient.
/// </para>
/// A <see cref="WeightedReward"/> mixes towers and has no single set of patch tokens: use
/// <see cref="GradientSaliency"/> for it, or Grad-CAM on one of its parts.
/// </summary>
public sealed class GradCamSaliency : IHeatmapSource
{
    public IVisionTokenReward Reward { get; }
    public int Layer { get; }
    public double BlurSigma { get; }
    readonly bool _ownsReward;

    /// <param name="ownsReward">true when the source loaded the reward itself and disposes it with itself</param>
    public GradCamSaliency(IVisionTokenReward reward, int layer = -2, double blurSigma = 0.0, bool ownsReward = false)
    {
        Reward = reward ?? throw new ArgumentNullException(nameof(reward));
        HeatmapOps.CheckSigma(blurSigma);
        Layer = layer;
        BlurSigma = blurSigma;
        _ownsReward = ownsReward;
    }

    /// <summary>Moves the reward whose vision tower is mapped.</summary>
    public void To(Device device) => Reward.To(device);

    public void Dispose()
    {
        if (_ownsReward) (Reward as IDisposable)?.Dispose();
    }

    public Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys)
    {
        RewardInputs.CheckImages(images, $"{Reward.Name} Grad-CAM");
        HeatmapKey.CheckBatch(images, keys, $"{Reward.Name} Grad-CAM");
        var prompts = HeatmapKey.Prompts(keys);
        using var scope = NewDisposeScope();
        Tensor cam;
        ClipCrop crop;
        using (enable_grad())
        {
            // Frozen towers build no graph unless the input asks for one.
            var input = images.detach().clone().requires_grad_(true);
            using var s = Reward.ScoreWithTokens(input, prompts);
            int count = s.HiddenStates.Count;
            int index = Layer < 0 ? count + Layer : Layer;
            if (index < 0 || index >= count - 1)
                throw new InvalidInputException(
                    $"Grad-CAM layer {Layer}: the vision tower of '{Reward.Name}' has hidden states 0..{count - 1}; use one of " +
                    $"0..{count - 2} (or -2..-{count}); the last ({count - 1}, -1) only feeds the class token to the output");
            var a = s.HiddenStates[index];
            long b = a.shape[0], tokens = a.shape[1] - 1;
            if (tokens != (long)s.Grid * s.Grid)
                throw new InvalidOperationException($"hidden state has {tokens} patch tokens, expected {s.Grid}x{s.Grid}");
            var g = torch.autograd.grad(new[] { (-s.Scores).sum() }, new[] { a })[0];
            var patches = a.detach().narrow(1, 1, tokens);
            var alpha = g.narrow(1, 1, tokens).mean(new long[] { 1 }, keepdim: true);
            cam = (patches * alpha).sum(2).relu().view(b, 1, s.Grid, s.Grid);
            crop = s.Crop;
        }
        var map = crop.ToImage(cam.to(float32));
        return HeatmapOps.Finish(map, BlurSigma).To(images).MoveToOuterDisposeScope();
    }
}

/// <summary>Blur and per-image normalisation of non-negative saliency maps.</summary>
static class HeatmapOps
{
    public static void CheckSigma(double sigma)
    {
        if (!(sigma >= 0) || !double.IsFinite(sigma)) throw new InvalidInputException($"blur sigma must be >= 0 pixels, got {sigma}");
    }

    /// <summary>[B,1,H,W] ≥ 0: optional Gaussian blur, then division by each image's maximum (all-zero maps stay zero).</summary>
    public static Tensor Finish(Tensor map, double blurSigma)
    {
        using var scope = NewDisposeScope();
        var m = blurSigma > 0 ? Blur(map, blurSigma) : map;
        var max = m.amax(new long[] { 1, 2, 3 }, keepdim: true);
        var result = torch.where(max > 0, m / max.clamp_min(1e-30), torch.zeros_like(m)).clamp(0.0, 1.0);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Separable Gaussian blur of [B,1,H,W], edges replicated, kernel radius ceil(3σ).</summary>
    public static Tensor Blur(Tensor map, double sigma)
    {
        using var scope = NewDisposeScope();
        int radius = Math.Max(1, (int)Math.Ceiling(3 * sigma));
        var k = new double[2 * radius + 1];
        for (int i = -radius; i <= radius; i++) k[i + radius] = Math.Exp(-0.5 * i * i / (sigma * sigma));
        double total = k.Sum();
        var kernel = torch.tensor(k.Select(v => v / total).ToArray(), dtype: map.dtype, device: map.device);
        var x = nn.functional.pad(map, new long[] { radius, radius, radius, radius }, PaddingModes.Replicate);
        x = nn.functional.conv2d(x, kernel.view(1, 1, 1, -1));
        x = nn.functional.conv2d(x, kernel.view(1, 1, -1, 1));
        return x.MoveToOuterDisposeScope();
    }
}
