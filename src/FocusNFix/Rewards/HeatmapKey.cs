using System.Globalization;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// Which generated image a heatmap is asked for: its prompt, the index of that prompt in the run's prompt list and the
/// seed it was sampled with. Masks drawn by hand and saved detector boxes are stored under
/// <see cref="Name"/> (<c>"{promptIndex}_{seed}"</c>).
/// </summary>
public readonly record struct HeatmapKey(string Prompt, int PromptIndex, long Seed)
{
    /// <summary>The name under which an image's map is stored: <c>"{promptIndex}_{seed}"</c>.</summary>
    public string Name => PromptIndex.ToString(CultureInfo.InvariantCulture) + "_" + Seed.ToString(CultureInfo.InvariantCulture);

    /// <summary>False for an image that was not generated from an indexed prompt list (conformance inputs, files from disk).</summary>
    public bool IsIdentified => PromptIndex >= 0;

    /// <summary>Keys for <paramref name="count"/> images that carry only a prompt (one for all), no prompt index or seed.</summary>
    public static IReadOnlyList<HeatmapKey> Unidentified(long count, string prompt = "") =>
        Enumerable.Repeat(new HeatmapKey(prompt, -1, 0), (int)count).ToArray();

    /// <summary>The prompt of each key, in order.</summary>
    public static IReadOnlyList<string> Prompts(IReadOnlyList<HeatmapKey> keys) => keys.Select(k => k.Prompt).ToArray();

    /// <summary>Throws unless <paramref name="images"/> is [B,3,H,W] and there is exactly one key per image.</summary>
    public static void CheckBatch(Tensor images, IReadOnlyList<HeatmapKey> keys, string who)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new InvalidInputException($"{who}: images must be [B,3,H,W] in [0,1], got [{string.Join(",", images.shape)}]");
        if (keys is null || keys.Count != images.shape[0])
            throw new InvalidInputException($"{who}: {keys?.Count ?? 0} image keys (prompt, prompt index, seed) for {images.shape[0]} images; give one per image");
    }
}
