using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>How the external model wants its input scaled.</summary>
public enum HeatmapInputRange { ZeroToOne, MinusOneToOne }

/// <summary>What the external model's output holds.</summary>
public enum HeatmapOutputKind { Probability, Logit }

/// <summary>Option parsing and output normalisation shared by the external model sources (ONNX, TorchScript).</summary>
public static class HeatmapModelIO
{
    /// <summary>Parses "0,1" or "-1,1" (spaces allowed), as written in configs and on the command line.</summary>
    public static HeatmapInputRange ParseInputRange(string text) =>
        text.Replace(" ", "") switch
        {
            "0,1" => HeatmapInputRange.ZeroToOne,
            "-1,1" => HeatmapInputRange.MinusOneToOne,
            _ => throw new InvalidInputException($"heatmap model input range '{text}': expected \"0,1\" or \"-1,1\""),
        };

    /// <summary>Parses "probability" or "logit".</summary>
    public static HeatmapOutputKind ParseOutputKind(string text) =>
        text.Trim().ToLowerInvariant() switch
        {
            "probability" => HeatmapOutputKind.Probability,
            "logit" => HeatmapOutputKind.Logit,
            _ => throw new InvalidInputException($"heatmap model output kind '{text}': expected \"probability\" or \"logit\""),
        };

    internal static void RequireFile(string modelPath, string what)
    {
        IO.InputFile.RequireFile(modelPath, $"{what} model file");
    }

    internal static Tensor ToModelRange(Tensor images, HeatmapInputRange range) =>
        range == HeatmapInputRange.MinusOneToOne ? images * 2 - 1 : images.alias();

    /// <summary>Moves a fresh result to <paramref name="like"/>'s dtype and device, disposing the original if a copy was made.</summary>
    internal static Tensor To(this Tensor fresh, Tensor like)
    {
        if (fresh.dtype == like.dtype && fresh.device == like.device) return fresh;
        using (fresh) return fresh.to(like.dtype, like.device);
    }

    internal static string Shape(IEnumerable<long> shape) => "[" + string.Join(",", shape) + "]";

    /// <summary>
    /// Turns a raw model output of shape [B,1,h,w] or [B,h,w] into a [B,1,H,W] heatmap in [0,1]:
    /// bilinear resize when (h,w) differs from (H,W), sigmoid for logits, then a clamp, because
    /// resizing and rounding inside the model can leave values a hair outside [0,1].
    /// </summary>
    internal static Tensor Finish(Tensor raw, long batch, long height, long width, HeatmapOutputKind kind,
        string modelPath, string outputName)
    {
        var s = raw.shape;
        bool ok = (s.Length == 4 && s[0] == batch && s[1] == 1) || (s.Length == 3 && s[0] == batch);
        if (!ok)
            throw new InvalidInputException(
                $"{modelPath}: output '{outputName}' has shape {Shape(s)} for a batch of {batch} images of " +
                $"{height}x{width}; expected [{batch},1,h,w] or [{batch},h,w] (a one-channel map per image, " +
                $"any h,w: it is resized to {height}x{width})");
        using var scope = NewDisposeScope();
        var x = s.Length == 3 ? raw.unsqueeze(1) : raw.alias();
        // Logits are resized before the sigmoid so the upsampled map keeps sharp edges.
        if (x.shape[2] != height || x.shape[3] != width)
            x = nn.functional.interpolate(x, new long[] { height, width }, mode: InterpolationMode.Bilinear,
                align_corners: false);
        if (kind == HeatmapOutputKind.Logit) x = x.sigmoid();
        return x.clamp(0.0, 1.0).MoveToOuterDisposeScope();
    }
}
