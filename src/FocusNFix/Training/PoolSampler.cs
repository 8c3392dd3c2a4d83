using FocusNFix.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>
/// Samples pool entries the way a training run does, for the cache of originals (I0, without gradients) and for the
/// training step (I, through the gradient window): the same text states (each prompt encoded on its own, so a batch's
/// make-up never changes them), the same initial noise and per-image noise stream for an entry's seed, and the same
/// <see cref="DenoisingLoop"/>. With a zero LoRA the two paths therefore give the same image bit for bit.
/// </summary>
public sealed class PoolSampler : IDisposable
{
    readonly TextToImagePipeline _pipe;
    readonly Dictionary<string, Tensor> _cond = new();
    Tensor? _uncond;

    public int Steps { get; }
    public double GuidanceScale { get; }
    public double Eta { get; }
    public GradientWindow Window { get; }
    public int Height { get; }
    public int Width { get; }

    public PoolSampler(TextToImagePipeline pipe, int steps, double guidanceScale, double eta, GradientWindow window, int? height = null, int? width = null)
    {
        _pipe = pipe;
        Steps = steps; GuidanceScale = guidanceScale; Eta = eta; Window = window;
        (Height, Width) = pipe.ImageSize(height, width);
    }

    public TextToImagePipeline Pipeline => _pipe;

    /// <summary>The text states of a batch: cond [B,77,D], or (uncond | cond) [2B,77,D] with guidance.</summary>
    public Tensor TextStates(IReadOnlyList<string> prompts)
    {
        var parts = prompts.Select(p => Encoded(_cond, p)).ToList();
        var cond = cat(parts, 0);
        if (GuidanceScale <= 1.0) return cond;
        _uncond ??= EncodeOne("");
        return cat(new[] { _uncond.expand(cond.shape), cond }, 0);
    }

    Tensor Encoded(Dictionary<string, Tensor> cache, string prompt)
    {
        if (!cache.TryGetValue(prompt, out var e)) cache[prompt] = e = EncodeOne(prompt);
        return e;
    }

    Tensor EncodeOne(string prompt)
    {
        using var _ = no_grad();
        return _pipe.EncodePrompts(new[] { prompt }).DetachFromDisposeScope();
    }

    /// <summary>x_T of each entry: randn from a generator seeded with the entry's seed, as <see cref="TextToImagePipeline.Sample"/> draws it.</summary>
    public Tensor Noise(IReadOnlyList<PoolEntry> entries) =>
        _pipe.NoiseFromSeeds(entries.Select(e => e.Seed).ToList(), Height / _pipe.VaeScaleFactor, Width / _pipe.VaeScaleFactor);

    /// <summary>
    /// The model-space result for the entries from their noise: final latents (DRaFT-K, full) or the x0 prediction
    /// at step T-K (ReFL). With <paramref name="withGrad"/> the window's steps run under autograd.
    /// </summary>
    public Tensor Sample(IReadOnlyList<PoolEntry> entries, Tensor noise, bool withGrad)
    {
        var loop = new DenoisingLoop { Steps = Steps, GuidanceScale = GuidanceScale, Eta = Eta, Window = Window, WithGrad = withGrad };
        var generators = DenoisingLoop.NoiseGenerators(entries.Select(e => e.Seed).ToList());
        try
        {
            using var scope = NewDisposeScope();
            return loop.Run(_pipe, noise, TextStates(entries.Select(e => e.Prompt).ToList()), generators).MoveToOuterDisposeScope();
        }
        finally
        {
            foreach (var g in generators) g.Dispose();
        }
    }

    /// <summary>Model space to images in [0,1], differentiable (VAE decode, or the pixels themselves).</summary>
    public Tensor ToImages(Tensor modelSpace) => _pipe.Decode(modelSpace);

    public void Dispose()
    {
        foreach (var t in _cond.Values) t.Dispose();
        _cond.Clear();
        _uncond?.Dispose();
    }
}
