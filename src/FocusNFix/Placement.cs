using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix;

/// <summary>
/// Where and in which precision models run: parsing the config and command-line spellings, and comparing devices
/// (TorchSharp's Device compares by reference, and "cuda" names the same device as "cuda:0").
/// </summary>
public static class Placement
{
    /// <summary>True when <paramref name="a"/> and <paramref name="b"/> are the same device (an unset index is device 0).</summary>
    public static bool Same(Device a, Device b) =>
        a.type == b.type && (a.type == DeviceType.CPU || Math.Max(a.index, 0) == Math.Max(b.index, 0));

    /// <summary>cpu, cuda, cuda:N (or any device libtorch knows); <paramref name="source"/> names the setting in the error.</summary>
    public static Device ParseDevice(string text, string source)
    {
        try { return new Device(text); }
        catch (Exception e) { throw new InvalidInputException($"{source} '{text}': {e.Message} (expected cpu, cuda or cuda:N)"); }
    }

    /// <summary>float32 (fp32), bfloat16 (bf16) or float16 (fp16).</summary>
    public static ScalarType ParseDType(string text, string source) => text.ToLowerInvariant() switch
    {
        "float32" or "fp32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float16" or "fp16" => ScalarType.Float16,
        _ => throw new InvalidInputException($"{source} '{text}': expected float32, bfloat16 or float16"),
    };
}
