using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.ShapesWorld;

/// <summary>
/// Conversions between the world's two image forms: bytes, row-major H x W x 3 (HWC), and floats,
/// [3, H, W] (CHW) in [0, 1] with value = byte / 255; plus TorchSharp tensors of the float form.
/// </summary>
public static class WorldImage
{
    public static float[] ToFloatChw(byte[] rgb, int width, int height)
    {
        CheckLength(rgb.Length, width, height, "byte image");
        int hw = width * height;
        var f = new float[3 * hw];
        for (int p = 0; p < hw; p++)
            for (int c = 0; c < 3; c++)
                f[c * hw + p] = rgb[3 * p + c] / 255f;
        return f;
    }

    /// <summary>Floats are clamped to [0, 1] and rounded to the nearest byte (NaN becomes 0).</summary>
    public static byte[] ToBytesHwc(float[] chw, int width, int height)
    {
        CheckLength(chw.Length, width, height, "float image");
        int hw = width * height;
        var b = new byte[3 * hw];
        for (int p = 0; p < hw; p++)
            for (int c = 0; c < 3; c++)
            {
                float v = chw[c * hw + p];
                b[3 * p + c] = float.IsNaN(v) ? (byte)0 : (byte)MathF.Round(Math.Clamp(v, 0f, 1f) * 255f);
            }
        return b;
    }

    /// <summary>A float32 tensor [3, H, W] in [0, 1] on the CPU (move it with .to(device)).</summary>
    public static Tensor ToTensor(byte[] rgb, int width, int height) =>
        torch.tensor(ToFloatChw(rgb, width, height), new long[] { 3, height, width }, ScalarType.Float32);

    /// <summary>Bytes HWC from a tensor [3, H, W] (or [1, 3, H, W]) in [0, 1], any device and floating dtype.</summary>
    public static byte[] FromTensor(Tensor image)
    {
        using var scope = torch.NewDisposeScope();
        var t = image.dim() == 4 && image.shape[0] == 1 ? image[0] : image;
        if (t.dim() != 3 || t.shape[0] != 3)
            throw new InvalidInputException($"image tensor of shape [{string.Join(", ", image.shape)}]: expected [3, H, W] or [1, 3, H, W]");
        int h = (int)t.shape[1], w = (int)t.shape[2];
        var data = t.detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        return ToBytesHwc(data, w, h);
    }

    /// <summary>A mask (row-major H x W) as a float32 tensor [1, H, W] of 0 and 1.</summary>
    public static Tensor MaskToTensor(bool[] mask, int width, int height)
    {
        if (mask.Length != width * height) throw new InvalidInputException($"mask of {mask.Length} values: expected {width} x {height}");
        return torch.tensor(mask.Select(m => m ? 1f : 0f).ToArray(), new long[] { 1, height, width }, ScalarType.Float32);
    }

    /// <summary>
    /// A batch for training: images [B, 3, H, W] in [0, 1] and the hazard and glitch masks [B, 1, H, W] of 0 and 1,
    /// all float32 on the CPU.
    /// </summary>
    public static (Tensor Images, Tensor HazardMasks, Tensor GlitchMasks) ToBatch(IReadOnlyList<RenderedScene> scenes)
    {
        if (scenes.Count == 0) throw new InvalidInputException("an empty batch of rendered scenes");
        int w = scenes[0].Width, h = scenes[0].Height, hw = w * h;
        if (scenes.Any(s => s.Width != w || s.Height != h)) throw new InvalidInputException("rendered scenes of different sizes in one batch");
        var images = new float[scenes.Count * 3 * hw];
        var hazard = new float[scenes.Count * hw];
        var glitch = new float[scenes.Count * hw];
        for (int i = 0; i < scenes.Count; i++)
        {
            scenes[i].ToFloatChw().CopyTo(images, i * 3 * hw);
            for (int p = 0; p < hw; p++)
            {
                hazard[i * hw + p] = scenes[i].HazardMask[p] ? 1f : 0f;
                glitch[i * hw + p] = scenes[i].GlitchMask[p] ? 1f : 0f;
            }
        }
        long b = scenes.Count;
        return (torch.tensor(images, new long[] { b, 3, h, w }, ScalarType.Float32),
                torch.tensor(hazard, new long[] { b, 1, h, w }, ScalarType.Float32),
                torch.tensor(glitch, new long[] { b, 1, h, w }, ScalarType.Float32));
    }

    /// <summary>One defect kind's masks of a batch, [B, 1, H, W] of 0 and 1 (float32 on the CPU).</summary>
    public static Tensor Masks(IReadOnlyList<RenderedScene> scenes, DefectKind kind)
    {
        if (scenes.Count == 0) throw new InvalidInputException("an empty batch of rendered scenes");
        int w = scenes[0].Width, h = scenes[0].Height, hw = w * h;
        if (scenes.Any(s => s.Width != w || s.Height != h)) throw new InvalidInputException("rendered scenes of different sizes in one batch");
        var masks = new float[scenes.Count * hw];
        for (int i = 0; i < scenes.Count; i++)
        {
            var m = scenes[i].Mask(kind);
            for (int p = 0; p < hw; p++) masks[i * hw + p] = m[p] ? 1f : 0f;
        }
        return torch.tensor(masks, new long[] { scenes.Count, 1, h, w }, ScalarType.Float32);
    }

    internal static void CheckLength(int length, int width, int height, string what)
    {
        if (length != 3 * width * height)
            throw new InvalidInputException($"{what} of {length} values: expected 3 x {height} x {width} = {3 * width * height}");
    }
}
