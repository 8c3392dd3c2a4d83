using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// A differentiable score of generated images: higher is better. Each reward does its own
/// preprocessing (resize, crop, normalisation) inside autograd, so gradients reach the images.
/// </summary>
public interface IReward
{
    /// <summary>Short name for logs and weighted sums ("aesthetic", "safety", ...).</summary>
    string Name { get; }

    /// <summary>
    /// <paramref name="images"/>: [B,3,H,W] with values in [0,1], any H and W. <paramref name="prompts"/>: one
    /// per image, or a single prompt for all; rewards that are not text-conditioned ignore them.
    /// Returns [B], one score per image, differentiable with respect to <paramref name="images"/>, on the
    /// reward's own device and dtype (those of its weights; images are moved there).
    /// </summary>
    Tensor Score(Tensor images, IReadOnlyList<string> prompts);

    /// <summary>
    /// Moves the reward's weights to <paramref name="device"/> (dtype unchanged), where <see cref="Score"/> then runs.
    /// A reward without weights computes on the images' device and has nothing to move.
    /// </summary>
    void To(Device device);
}

/// <summary>
/// A reward computed by a CLIP vision tower. It can hand back the tower's hidden states (patch tokens)
/// together with the scores, in the same autograd graph, which Grad-CAM needs.
/// </summary>
public interface IVisionTokenReward : IReward
{
    /// <summary>The same scores as <see cref="IReward.Score"/>, plus the vision tower's hidden states.</summary>
    VisionTokenScore ScoreWithTokens(Tensor images, IReadOnlyList<string> prompts);
}

/// <summary>
/// Scores [B] and the vision tower's hidden states, each [B, 1 + Grid*Grid, C] with the class token first:
/// HiddenStates[0] is the encoder input (after pre_layrnorm), HiddenStates[i] layer i's output.
/// <paramref name="Crop"/> says which part of the input images the Grid x Grid patches cover.
/// </summary>
public sealed record VisionTokenScore(Tensor Scores, IReadOnlyList<Tensor> HiddenStates, int Grid, ClipCrop Crop) : IDisposable
{
    public void Dispose()
    {
        Scores.Dispose();
        foreach (var h in HiddenStates) h.Dispose();
    }
}

/// <summary>Σ weight_i · reward_i(images, prompts). Weights may be negative (a penalty).</summary>
public sealed class WeightedReward : IReward, IDisposable
{
    readonly (IReward Reward, double Weight)[] _parts;
    readonly bool _ownsParts;

    /// <param name="ownsParts">true when the parts were loaded for this sum alone and are disposed with it</param>
    public WeightedReward(IEnumerable<(IReward Reward, double Weight)> parts, bool ownsParts = false)
    {
        _ownsParts = ownsParts;
        _parts = parts.ToArray();
        if (_parts.Length == 0) throw new InvalidInputException("a weighted reward needs at least one part");
        foreach (var (reward, weight) in _parts)
        {
            if (reward is null) throw new InvalidInputException("a weighted reward part is null");
            if (!double.IsFinite(weight)) throw new InvalidInputException($"reward '{reward.Name}' has weight {weight}; weights must be finite");
        }
        Name = string.Join(" + ", _parts.Select(p => $"{p.Weight:G4}*{p.Reward.Name}"));
    }

    public string Name { get; }
    public IReadOnlyList<(IReward Reward, double Weight)> Parts => _parts;

    /// <summary>Moves every part.</summary>
    public void To(Device device)
    {
        foreach (var (reward, _) in _parts) reward.To(device);
    }

    public void Dispose()
    {
        if (_ownsParts)
            foreach (var (reward, _) in _parts) (reward as IDisposable)?.Dispose();
    }

    public Tensor Score(Tensor images, IReadOnlyList<string> prompts)
    {
        using var scope = NewDisposeScope();
        Tensor? total = null;
        foreach (var (reward, weight) in _parts)
        {
            var s = reward.Score(images, prompts);
            // Rewards may run on other devices or dtypes than the images; sum where the first one lives.
            var term = (total is null ? s : s.to(total.dtype, total.device)) * weight;
            total = total is null ? term : total + term;
        }
        return total!.MoveToOuterDisposeScope();
    }
}

/// <summary>Input checks shared by the rewards.</summary>
public static class RewardInputs
{
    /// <summary>Throws unless <paramref name="images"/> is [B,3,H,W] floating point.</summary>
    public static void CheckImages(Tensor images, string who)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new InvalidInputException($"{who}: images must be [B,3,H,W] in [0,1], got [{string.Join(",", images.shape)}]");
        if (!images.is_floating_point())
            throw new InvalidInputException($"{who}: images must be floating point in [0,1], got {images.dtype}");
    }

    /// <summary>One prompt per image: a single prompt is repeated; any other count mismatch is an error.</summary>
    public static IReadOnlyList<string> PromptsFor(long batch, IReadOnlyList<string> prompts, string who)
    {
        if (prompts is null || prompts.Count == 0)
            throw new InvalidInputException($"{who}: this reward is text-conditioned and needs a prompt per image (got none for {batch} images)");
        if (prompts.Count == batch) return prompts;
        if (prompts.Count == 1) return Enumerable.Repeat(prompts[0], (int)batch).ToArray();
        throw new InvalidInputException($"{who}: {prompts.Count} prompts for {batch} images; give one per image or a single one for all");
    }

    /// <summary>Runs a loader, prefixing its input errors with what the folder was expected to hold.</summary>
    internal static T Load<T>(string what, string path, Func<T> load)
    {
        try { return load(); }
        catch (InvalidInputException e)
        {
            throw new InvalidInputException($"{what}: cannot load {path}: {e.Message}", e);
        }
    }

    /// <summary>Freezes every parameter: rewards are judges, never trained, and frozen weights keep no gradient buffers.</summary>
    internal static void Freeze(nn.Module module)
    {
        foreach (var p in module.parameters()) p.requires_grad = false;
        module.eval();
    }
}
