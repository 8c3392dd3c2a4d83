using FocusNFix.IO;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Lora;

/// <summary>One adapted layer: W' = W + scale * (Alpha / rank) * Up @ Down.</summary>
public sealed record LoraLayer(string Module, Tensor Down, Tensor Up, double Alpha)
{
    public int Rank => (int)Down.shape[0];
}

/// <summary>
/// Reads LoRA files in the four key conventions diffusers 0.27 loads: PEFT (<c>lora_A</c>/<c>lora_B</c>),
/// diffusers training scripts (<c>lora.down</c>/<c>lora.up</c>), legacy attention processors
/// (<c>processor.to_q_lora.down</c>) and kohya (<c>lora_unet_..._lora_down</c> with <c>.alpha</c>).
/// </summary>
public static class LoraFile
{
    public static List<LoraLayer> Load(string path, IEnumerable<string> unetModuleNames)
    {
        WeightFiles.RefusePickle(path);
        var tensors = Safetensors.Load(path);
        var modules = unetModuleNames.ToHashSet();
        // kohya flattens module paths with '_', which is ambiguous; resolve against the model's own names.
        var kohyaNames = modules.GroupBy(m => m.Replace('.', '_')).ToDictionary(g => g.Key, g => g.First());
        var parts = new Dictionary<string, (Tensor? Down, Tensor? Up, double? Alpha)>();
        void Put(string module, string which, Tensor t)
        {
            parts.TryGetValue(module, out var p);
            parts[module] = which switch
            {
                "down" => (t, p.Up, p.Alpha),
                "up" => (p.Down, t, p.Alpha),
                _ => (p.Down, p.Up, t.to(ScalarType.Float64).item<double>()),
            };
        }
        foreach (var (key, t) in tensors)
        {
            string? module = null, which = null;
            if (key.StartsWith("lora_unet_"))
            {
                var dot = key.IndexOf('.');
                var flat = key[10..dot];
                var rest = key[(dot + 1)..];
                which = rest switch { "lora_down.weight" => "down", "lora_up.weight" => "up", "alpha" => "alpha", _ => null };
                if (!kohyaNames.TryGetValue(flat, out module))
                    throw new InvalidInputException($"{path}: key '{key}' names no layer of this UNet");
            }
            else
            {
                var k = key.StartsWith("unet.") ? key[5..] : key;
                foreach (var (suffix, w) in new[] { (".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora.down.weight", "down"), (".lora.up.weight", "up"), (".alpha", "alpha") })
                    if (k.EndsWith(suffix)) { module = k[..^suffix.Length]; which = w; break; }
                if (module == null && k.Contains(".processor."))
                {
                    // legacy: <attn>.processor.to_q_lora.down.weight; to_out_lora means to_out.0
                    var m = System.Text.RegularExpressions.Regex.Match(k, @"^(.*)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$");
                    if (m.Success)
                    {
                        var proj = m.Groups[2].Value == "to_out" ? "to_out.0" : m.Groups[2].Value;
                        module = $"{m.Groups[1].Value}.{proj}";
                        which = m.Groups[3].Value;
                    }
                }
            }
            if (module == null || which == null)
                throw new InvalidInputException($"{path}: key '{key}' is not a LoRA key of a known convention (PEFT lora_A/lora_B, diffusers lora.down/lora.up, attention-processor *_lora, kohya lora_unet_*)");
            if (!modules.Contains(module))
                throw new InvalidInputException($"{path}: key '{key}' targets '{module}', which is not a layer of this UNet");
            Put(module, which, t);
        }
        var layers = new List<LoraLayer>();
        foreach (var (module, (down, up, alpha)) in parts.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (down is null || up is null)
                throw new InvalidInputException($"{path}: layer '{module}' has {(down is null ? "no down/lora_A" : "no up/lora_B")} weight");
            if (up.shape[1] != down.shape[0])
                throw new InvalidInputException($"{path}: layer '{module}': up [{string.Join(",", up.shape)}] and down [{string.Join(",", down.shape)}] ranks differ");
            layers.Add(new LoraLayer(module, down, up, alpha ?? down.shape[0]));
        }
        return layers;
    }

    /// <summary>Adds scale * (alpha/r) * up @ down to each target Linear's weight (negative scale unmerges).</summary>
    public static void Merge(nn.Module model, IEnumerable<LoraLayer> layers, double scale)
    {
        var linears = model.named_modules().Where(m => m.module is Linear).ToDictionary(m => m.name, m => (Linear)m.module);
        using var _ = no_grad();
        foreach (var l in layers)
        {
            if (!linears.TryGetValue(l.Module, out var lin))
                throw new InvalidInputException($"LoRA layer '{l.Module}' is not a Linear layer of {model.GetType().Name}");
            var w = lin.weight!;
            var delta = l.Up.to(ScalarType.Float32).matmul(l.Down.to(ScalarType.Float32)).mul(scale * l.Alpha / l.Rank);
            if (!delta.shape.SequenceEqual(w.shape))
                throw new InvalidInputException($"LoRA layer '{l.Module}': delta [{string.Join(",", delta.shape)}] does not match the weight [{string.Join(",", w.shape)}]");
            w.add_(delta.to(w.dtype, w.device));
        }
    }
}
