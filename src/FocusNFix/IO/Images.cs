using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace FocusNFix.IO;

/// <summary>Conversions between image tensors ([3,H,W] or [B,3,H,W] float in [0,1]) and PNG files.</summary>
public static class Images
{
    /// <summary>
    /// [B,3,H,W] in [0,1] to [B,H,W,3] uint8 as diffusers' numpy_to_pil does: round(x*255) in float32 with
    /// round-half-to-even (torch.round rounds half to even, like numpy).
    /// </summary>
    public static Tensor ToUint8(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = images.detach().to(float32).cpu().clamp(0, 1).mul(255f).round().to(ScalarType.Byte);
        return x.permute(0, 2, 3, 1).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Saves one image ([3,H,W] float in [0,1]) as PNG, atomically, with optional text chunks (keyword, text).</summary>
    public static void SavePng(Tensor image, string path, IReadOnlyList<(string Keyword, string Text)>? text = null)
    {
        if (image.dim() != 3 || image.shape[0] != 3)
            throw new ArgumentException($"expected an image tensor [3,H,W], got [{string.Join(",", image.shape)}]");
        using var u8 = ToUint8(image.unsqueeze(0));
        int h = (int)image.shape[1], w = (int)image.shape[2];
        var bytes = u8.bytes.ToArray();
        using var img = Image.LoadPixelData<Rgb24>(bytes, w, h);
        WritePng(img, path, text);
    }

    /// <summary>
    /// Every PNG fnf writes goes through here. Text chunks stay uncompressed tEXt (iTXt when the text is not Latin-1),
    /// as A1111 writes its <c>parameters</c>, so the simplest PNG readers see them.
    /// </summary>
    public static void WritePng(Image img, string path, IReadOnlyList<(string Keyword, string Text)>? text)
    {
        var png = img.Metadata.GetPngMetadata();
        png.TextData.Clear();
        foreach (var (k, v) in text ?? Array.Empty<(string, string)>()) png.TextData.Add(new PngTextData(k, v, "", ""));
        var encoder = new PngEncoder { TextCompressionThreshold = int.MaxValue };
        AtomicFile.Write(path, s => img.SaveAsPng(s, encoder));
    }

    /// <summary>The text chunks of a PNG file (tEXt, zTXt, iTXt) by keyword.</summary>
    public static Dictionary<string, string> ReadPngText(string path)
    {
        InputFile.RequireFile(path, "image file");
        IImageInfo? info;
        try { info = Image.Identify(path, out var format); if (format is not PngFormat) throw new InvalidInputException($"{path}: not a PNG file ({format?.Name ?? "unknown format"})"); }
        catch (Exception e) when (e is UnknownImageFormatException or InvalidImageContentException)
        { throw new InvalidInputException($"{path}: not a readable PNG ({e.Message})"); }
        if (info is null) throw new InvalidInputException($"{path}: not a readable PNG");
        PngStructure.Check(path);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var t in info.Metadata.GetPngMetadata().TextData) result[t.Keyword] = t.Value;
        return result;
    }

    /// <summary>Loads an image file as [3,H,W] float32 in [0,1].</summary>
    public static Tensor LoadImage(string path)
    {
        InputFile.RequireFile(path, "image file");
        Image<Rgb24> img;
        try { img = Image.Load<Rgb24>(path); }
        catch (Exception e) when (e is UnknownImageFormatException or InvalidImageContentException)
        { throw new InvalidInputException($"{path}: not a readable image ({e.Message})"); }
        using var _ = img;
        var bytes = new byte[img.Width * img.Height * 3];
        img.CopyPixelDataTo(bytes);
        using var t = tensor(bytes, new long[] { img.Height, img.Width, 3 }, ScalarType.Byte);
        return t.permute(2, 0, 1).to(float32).div(255f);
    }

    /// <summary>Loads a greyscale mask image as [H,W] float32 in [0,1] (colour images are averaged).</summary>
    public static Tensor LoadGray(string path)
    {
        using var rgb = LoadImage(path);
        return rgb.mean(new long[] { 0 });
    }
}
