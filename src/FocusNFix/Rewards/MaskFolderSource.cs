using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// Masks from a folder of greyscale images named <c>{promptIndex}_{seed}.png</c> (also .jpg/.jpeg/.bmp/.webp),
/// e.g. drawn by hand over the generated samples. White (1) marks the region; colour images are averaged over
/// channels; a mask whose size differs from the image's is resized bilinearly. A missing mask is an error
/// naming the folder and the expected file.
/// </summary>
public sealed class MaskFolderSource : IHeatmapSource
{
    static readonly string[] Extensions = { ".png", ".jpg", ".jpeg", ".bmp", ".webp" };

    public string Folder { get; }

    public MaskFolderSource(string folder)
    {
        InputFile.RequireFolder(folder, "mask folder");
        Folder = folder;
    }

    /// <summary>The mask file for <paramref name="key"/>, or null when there is none.</summary>
    public string? PathFor(HeatmapKey key)
    {
        var stem = key.Name;
        foreach (var ext in Extensions)
        {
            var p = Path.Combine(Folder, stem + ext);
            if (InputFile.KindOf(p) != PathKind.Missing) return p;
        }
        return null;
    }

    public Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys)
    {
        HeatmapKey.CheckBatch(images, keys, $"mask folder {Folder}");
        long h = images.shape[2], w = images.shape[3];
        using var scope = NewDisposeScope();
        var maps = new List<Tensor>();
        foreach (var key in keys)
        {
            if (!key.IsIdentified) throw Unidentified();
            var path = PathFor(key) ?? throw Missing(key);
            var m = Images.LoadGray(path).unsqueeze(0).unsqueeze(0);
            if (m.shape[2] != h || m.shape[3] != w)
                m = nn.functional.interpolate(m, new[] { h, w }, mode: InterpolationMode.Bilinear, align_corners: false);
            maps.Add(m);
        }
        return torch.cat(maps, 0).clamp(0.0, 1.0).to(images.dtype, images.device).MoveToOuterDisposeScope();
    }

    /// <summary>Nothing to move: masks are read from files and handed back on the images' device.</summary>
    public void To(Device device) { }

    public void Dispose() { }

    InvalidInputException Unidentified() =>
        new($"mask folder {Folder}: masks are looked up by prompt index and seed, and this image has none (only images generated from a prompt list have them)");

    InvalidInputException Missing(HeatmapKey key)
    {
        var present = Directory.EnumerateFiles(Folder).Select(Path.GetFileName)
            .Where(n => Extensions.Contains(Path.GetExtension(n), StringComparer.OrdinalIgnoreCase)).OrderBy(n => n).ToList();
        return new InvalidInputException(
            $"{Folder}: no mask for prompt {key.PromptIndex}, seed {key.Seed}: expected the file {key.Name}.png " +
            $"(masks are named <prompt-index>_<seed>.png); the folder has {present.Count} mask files" +
            (present.Count > 0 ? $", e.g. {string.Join(", ", present.Take(5))}" : ""));
    }
}
