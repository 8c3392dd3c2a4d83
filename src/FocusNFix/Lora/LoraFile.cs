using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using FocusNFix.IO;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Lora;

/// <summary>One adapted layer: W' = W + scale * (Alpha / rank) * Up @ Down. Down is [r, in], Up is [out, r].</summary>
public sealed record LoraLayer(string Module, Tensor Down, Tensor Up, double Alpha)
{
    public int Rank => (int)Down.shape[0];
}

/// <summary>The four key conventions diffusers 0.27 loads (module <c>m</c> = "down_blocks.0....attn1.to_q").</summary>
public enum LoraFormat
{
    /// <summary><c>unet.m.lora_A.weight</c> / <c>unet.m.lora_B.weight</c> (PEFT; also read with PeftModel's <c>base_model.model.</c> prefix).</summary>
    Peft,
    /// <summary><c>unet.m.lora.down.weight</c> / <c>unet.m.lora.up.weight</c> (diffusers 0.27 training scripts).</summary>
    Diffusers,
    /// <summary><c>unet.&lt;attn&gt;.processor.to_q_lora.down.weight</c>, to_out.0 as <c>to_out_lora</c> (legacy attention processors).</summary>
    AttnProcs,
    /// <summary><c>lora_unet_&lt;m with _&gt;.lora_down.weight</c> / <c>.lora_up.weight</c> / <c>.alpha</c> (kohya sd-scripts).</summary>
    Kohya,
}

/// <summary>A parsed LoRA file: layers in ordinal module order, the detected convention and the file's metadata.</summary>
public sealed record LoraFileContents(List<LoraLayer> Layers, LoraFormat Format, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Reads and writes LoRA safetensors files in the four key conventions of <see cref="LoraFormat"/>.
/// </summary>
/// <remarks>
/// Alpha: a kohya <c>.alpha</c> tensor wins; otherwise our metadata (<c>lora_alpha_pattern</c>, a JSON object
/// module → alpha, then <c>lora_alpha</c>); otherwise alpha = rank. diffusers 0.27 itself ignores alpha in
/// non-kohya files (it uses alpha = rank), so a LoRA with alpha ≠ rank is only portable to diffusers as kohya.
/// </remarks>
public static class LoraFile
{
    public const string AlphaKey = "lora_alpha", AlphaPatternKey = "lora_alpha_pattern", RankKey = "lora_rank", TargetsKey = "lora_target_modules";

    static readonly Regex AttnProcKey = new(@"^(.*)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$", RegexOptions.Compiled);

    /// <summary>Layers of a file; see <see cref="Read"/>.</summary>
    public static List<LoraLayer> Load(string path, IEnumerable<string> unetModuleNames) => Read(path, unetModuleNames).Layers;

    /// <summary>
    /// Validates a LoRA file on its own, before any model is loaded: the safetensors structure, the key convention,
    /// every layer's rank, alpha and values (<see cref="Read"/> without a UNet to match the layer names against).
    /// </summary>
    public static void Check(string path)
    {
        var contents = Read(path, null);
        foreach (var l in contents.Layers) { l.Down.Dispose(); l.Up.Dispose(); }
    }

    /// <summary>
    /// Parses a LoRA file. <paramref name="unetModuleNames"/> are the module paths of the target UNet: every key must
    /// name one of them (kohya's '_'-flattened names are resolved against them), so a file for another model fails
    /// with the offending key and layer named; null skips that check (kohya layers then keep their flattened names).
    /// Rank and alpha are validated here, when the file is opened: a rank-0 layer divides by zero and a non-finite,
    /// zero or negative alpha scales the update into NaN, nothing or its opposite, all without another sign.
    /// </summary>
    public static LoraFileContents Read(string path, IEnumerable<string>? unetModuleNames)
    {
        WeightFiles.RefusePickle(path);
        InputFile.RequireFile(path, "LoRA file");
        var metadata = Safetensors.ReadHeader(path).Metadata;
        var tensors = Safetensors.Load(path);
        try
        {
            var contents = Parse(path, metadata, tensors, unetModuleNames?.ToHashSet());
            // Alpha scalars and anything else not handed on as a layer weight are done with.
            var kept = contents.Layers.SelectMany(l => new[] { l.Down, l.Up }).ToHashSet(ReferenceEqualityComparer.Instance);
            foreach (var t in tensors.Values) if (!kept.Contains(t)) t.Dispose();
            return contents;
        }
        catch { foreach (var t in tensors.Values) t.Dispose(); throw; }
    }

    static LoraFileContents Parse(string path, Dictionary<string, string> metadata, Dictionary<string, Tensor> tensors, HashSet<string>? modules)
    {
        if (tensors.Count == 0) throw new InvalidInputException($"{path}: the file holds no tensors, expected LoRA weights");
        // kohya flattens module paths with '_', which is ambiguous; resolve against the model's own names.
        var kohyaNames = modules?.GroupBy(m => m.Replace('.', '_')).ToDictionary(g => g.Key, g => g.First());
        var parts = new Dictionary<string, (Tensor? Down, Tensor? Up, double? Alpha)>();
        var formats = new HashSet<LoraFormat>();
        foreach (var (key, t) in tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (key.StartsWith("text_encoder", StringComparison.Ordinal) || key.StartsWith("lora_te", StringComparison.Ordinal))
                throw new InvalidInputException($"{path}: key '{key}' adapts the text encoder; only UNet LoRA layers are supported");
            var (module, which, format) = ParseKey(key, kohyaNames);
            if (module == null || which == null)
            {
                if (key.StartsWith("lora_unet_", StringComparison.Ordinal) && which != null)
                    throw new InvalidInputException($"{path}: key '{key}' names no layer of this UNet (the LoRA was made for a different model)");
                throw new InvalidInputException($"{path}: key '{key}' is not a LoRA key of a known convention (PEFT lora_A/lora_B, diffusers lora.down/lora.up, attention-processor *_lora, kohya lora_unet_*)");
            }
            if (modules != null && !modules.Contains(module))
                throw new InvalidInputException($"{path}: key '{key}' targets layer '{module}', which this UNet does not have (the LoRA was made for a different model)");
            if (format is LoraFormat f) formats.Add(f);
            parts.TryGetValue(module, out var p);
            parts[module] = which switch
            {
                "down" => (t, p.Up, p.Alpha),
                "up" => (p.Down, t, p.Alpha),
                _ => (p.Down, p.Up, ScalarValue(path, key, t)),
            };
        }
        if (formats.Count > 1)
            throw new InvalidInputException($"{path}: the keys mix LoRA conventions ({string.Join(", ", formats)})");
        var globalAlpha = MetadataAlpha(path, metadata);
        var pattern = MetadataAlphaPattern(path, metadata);
        PeftAdapterConfig? peftConfig = null;
        if (tensors.Keys.Any(k => k.StartsWith(RunFolderLora.PeftModelPrefix, StringComparison.Ordinal)))
        {
            // A PeftModel's adapter file keeps alpha in the adapter_config.json beside it, which PEFT itself reads.
            var cfgPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, PeftAdapterConfig.FileName);
            if (InputFile.KindOf(cfgPath) != PathKind.Missing)
            {
                peftConfig = PeftAdapterConfig.Load(cfgPath);
                (globalAlpha, pattern) = (peftConfig.EffectiveAlpha, null);
            }
            else if (globalAlpha is null && pattern is null)
                throw new InvalidInputException($"{path}: PEFT model keys ({RunFolderLora.PeftModelPrefix}*) carry no alpha; expected {PeftAdapterConfig.FileName} beside the file");
        }
        var layers = new List<LoraLayer>();
        foreach (var (module, (down, up, alpha)) in parts.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (down is null || up is null)
                throw new InvalidInputException($"{path}: layer '{module}' has {(down is null ? "no down/lora_A" : "no up/lora_B")} weight");
            if (down.dim() != 2 || up.dim() != 2)
                throw new InvalidInputException($"{path}: layer '{module}': down [{Dims(down)}] and up [{Dims(up)}] must both be matrices (conv LoRA is not supported)");
            if (up.shape[1] != down.shape[0])
                throw new InvalidInputException($"{path}: layer '{module}': up [{Dims(up)}] and down [{Dims(down)}] ranks differ");
            if (peftConfig != null && down.shape[0] != peftConfig.R)
                throw new InvalidInputException($"{path}: layer '{module}' has rank {down.shape[0]} but {PeftAdapterConfig.FileName} says r = {peftConfig.R}");
            double a = alpha ?? (pattern != null && pattern.TryGetValue(module, out var pa) ? pa : globalAlpha ?? down.shape[0]);
            CheckLayer(path, module, down, up, a, metadata);
            layers.Add(new LoraLayer(module, down, up, a));
        }
        return new LoraFileContents(layers, formats.Count == 1 ? formats.Single() : LoraFormat.Peft, metadata);
    }

    static void CheckLayer(string path, string module, Tensor down, Tensor up, double alpha, IReadOnlyDictionary<string, string> metadata)
    {
        long rank = down.shape[0];
        if (rank < 1)
            throw new InvalidInputException($"{path}: layer '{module}' has rank 0 (down [{Dims(down)}]): expected a rank of at least 1");
        if (metadata.TryGetValue(RankKey, out var declared) && declared != rank.ToString(CultureInfo.InvariantCulture))
            throw new InvalidInputException($"{path}: metadata '{RankKey}' = '{declared}' but layer '{module}' has rank {rank} (down [{Dims(down)}])");
        // kohya reads alpha 0 as "alpha = rank" and diffusers as scale 0: refused rather than guessed.
        if (!double.IsFinite(alpha) || alpha <= 0)
            throw new InvalidInputException(string.Create(CultureInfo.InvariantCulture, $"{path}: layer '{module}': alpha {alpha}: expected a finite number > 0"));
        foreach (var (name, t) in new[] { ("down", down), ("up", up) })
        {
            if (!t.is_floating_point())
                throw new InvalidInputException($"{path}: layer '{module}': {name} weight is {t.dtype}, expected a floating-point tensor");
            // A scope, not just a using: isfinite() makes a tensor too, and a LoRA is opened on every evaluation.
            using var scope = NewDisposeScope();
            if (!t.isfinite().all().item<bool>())
                throw new InvalidInputException($"{path}: layer '{module}': {name} weight holds NaN or infinite values");
        }
    }

    static (string? Module, string? Which, LoraFormat? Format) ParseKey(string key, Dictionary<string, string>? kohyaNames)
    {
        if (key.StartsWith("lora_unet_", StringComparison.Ordinal))
        {
            var dot = key.IndexOf('.');
            if (dot < 0) return (null, null, null);
            var flat = key[10..dot];
            var which = key[(dot + 1)..] switch { "lora_down.weight" => "down", "lora_up.weight" => "up", "alpha" => "alpha", _ => null };
            return (kohyaNames is null ? flat : kohyaNames.GetValueOrDefault(flat), which, LoraFormat.Kohya);
        }
        var k = key.StartsWith("unet.", StringComparison.Ordinal) ? key[5..]
            : key.StartsWith(RunFolderLora.PeftModelPrefix, StringComparison.Ordinal) ? key[RunFolderLora.PeftModelPrefix.Length..] : key;
        var m = AttnProcKey.Match(k);
        if (m.Success)
        {
            var proj = m.Groups[2].Value == "to_out" ? "to_out.0" : m.Groups[2].Value;
            return ($"{m.Groups[1].Value}.{proj}", m.Groups[3].Value, LoraFormat.AttnProcs);
        }
        foreach (var (suffix, w, f) in new (string, string, LoraFormat?)[] {
                     (".lora_A.weight", "down", LoraFormat.Peft), (".lora_B.weight", "up", LoraFormat.Peft),
                     (".lora.down.weight", "down", LoraFormat.Diffusers), (".lora.up.weight", "up", LoraFormat.Diffusers), (".alpha", "alpha", null) })
            if (k.EndsWith(suffix, StringComparison.Ordinal)) return (k[..^suffix.Length], w, f);
        return (null, null, null);
    }

    static double ScalarValue(string path, string key, Tensor t)
    {
        if (t.numel() != 1) throw new InvalidInputException($"{path}: '{key}' has shape [{Dims(t)}], expected a single alpha value");
        return t.to(ScalarType.Float64).item<double>();
    }

    static double? MetadataAlpha(string path, IReadOnlyDictionary<string, string> metadata)
    {
        if (!metadata.TryGetValue(AlphaKey, out var s)) return null;
        if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var a) && double.IsFinite(a)) return a;
        throw new InvalidInputException($"{path}: metadata '{AlphaKey}' = '{s}' is not a number");
    }

    static Dictionary<string, double>? MetadataAlphaPattern(string path, IReadOnlyDictionary<string, string> metadata)
    {
        if (!metadata.TryGetValue(AlphaPatternKey, out var s)) return null;
        try { return JsonSerializer.Deserialize<Dictionary<string, double>>(s); }
        catch (JsonException e) { throw new InvalidInputException($"{path}: metadata '{AlphaPatternKey}' is not a JSON object of numbers: {e.Message}"); }
    }

    /// <summary>
    /// Writes layers in one convention, atomically. Non-kohya files get <c>format: pt</c> plus rank/alpha metadata
    /// (per-module alphas as <c>lora_alpha_pattern</c> when they differ); kohya files get <c>.alpha</c> tensors and
    /// <c>ss_network_dim</c>/<c>ss_network_alpha</c> ("Dynamic" when layers differ). <paramref name="metadata"/> is added.
    /// </summary>
    public static void Save(string path, IReadOnlyList<LoraLayer> layers, LoraFormat format, IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (layers.Count == 0) throw new InvalidInputException($"{path}: no LoRA layers to save");
        var tensors = new Dictionary<string, Tensor>();
        var alphaTensors = new List<Tensor>();
        try
        {
            foreach (var l in layers)
            {
                var (down, up) = Keys(l.Module, format);
                tensors.Add(down, l.Down);
                tensors.Add(up, l.Up);
                if (format == LoraFormat.Kohya)
                {
                    var a = tensor((float)l.Alpha);
                    alphaTensors.Add(a);
                    tensors.Add($"{KohyaPrefix(l.Module)}.alpha", a);
                }
            }
            var meta = new Dictionary<string, string>();
            var ranks = layers.Select(l => l.Rank).Distinct().ToList();
            var alphas = layers.Select(l => l.Alpha).Distinct().ToList();
            if (format == LoraFormat.Kohya)
            {
                meta["ss_network_dim"] = ranks.Count == 1 ? ranks[0].ToString(CultureInfo.InvariantCulture) : "Dynamic";
                meta["ss_network_alpha"] = alphas.Count == 1 ? FormatNumber(alphas[0]) : "Dynamic";
            }
            else
            {
                meta["format"] = "pt";
                if (ranks.Count == 1) meta[RankKey] = ranks[0].ToString(CultureInfo.InvariantCulture);
                if (alphas.Count == 1) meta[AlphaKey] = FormatNumber(alphas[0]);
                else meta[AlphaPatternKey] = JsonSerializer.Serialize(layers.ToDictionary(l => l.Module, l => l.Alpha));
            }
            if (metadata != null) foreach (var (k, v) in metadata) meta[k] = v;
            Safetensors.Save(path, tensors, meta);
        }
        finally
        {
            foreach (var a in alphaTensors) a.Dispose();
        }
    }

    /// <summary>The (down, up) key names of a module in a convention.</summary>
    public static (string Down, string Up) Keys(string module, LoraFormat format)
    {
        switch (format)
        {
            case LoraFormat.Peft: return ($"unet.{module}.lora_A.weight", $"unet.{module}.lora_B.weight");
            case LoraFormat.Diffusers: return ($"unet.{module}.lora.down.weight", $"unet.{module}.lora.up.weight");
            case LoraFormat.Kohya: return ($"{KohyaPrefix(module)}.lora_down.weight", $"{KohyaPrefix(module)}.lora_up.weight");
            case LoraFormat.AttnProcs:
                var m = Regex.Match(module, @"^(.*)\.(to_q|to_k|to_v|to_out\.0)$");
                if (!m.Success) throw new InvalidInputException($"LoRA layer '{module}' is not an attention projection: the attention-processor format cannot hold it");
                var proj = m.Groups[2].Value == "to_out.0" ? "to_out" : m.Groups[2].Value;
                return ($"unet.{m.Groups[1].Value}.processor.{proj}_lora.down.weight", $"unet.{m.Groups[1].Value}.processor.{proj}_lora.up.weight");
            default: throw new ArgumentOutOfRangeException(nameof(format));
        }
    }

    static string KohyaPrefix(string module) => "lora_unet_" + module.Replace('.', '_');

    static string FormatNumber(double v) => v == Math.Floor(v) && Math.Abs(v) < 1e15
        ? ((long)v).ToString(CultureInfo.InvariantCulture) : v.ToString("R", CultureInfo.InvariantCulture);

    static string Dims(Tensor t) => string.Join(",", t.shape);

    /// <summary>Adds scale * (alpha/r) * up @ down to each target Linear's weight (negative scale unmerges).</summary>
    public static void Merge(nn.Module model, IEnumerable<LoraLayer> layers, double scale)
    {
        var linears = model.named_modules().Where(m => m.module is Linear).ToDictionary(m => m.name, m => (Linear)m.module);
        using var _ = no_grad();
        foreach (var l in layers)
        {
            if (!linears.TryGetValue(l.Module, out var lin))
                throw new InvalidInputException($"LoRA layer '{l.Module}' is not a Linear layer of {model.GetType().Name}");
            MergeInto(lin.weight!, l, scale);
        }
    }

    /// <summary>weight += factor · up @ down with factor = scale · alpha / r, computed in float32 (float64 for float64 weights).</summary>
    internal static void MergeInto(Tensor weight, LoraLayer l, double scale)
    {
        using var scope = NewDisposeScope();
        var ct = weight.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var delta = l.Up.to(ct, weight.device).matmul(l.Down.to(ct, weight.device)).mul(scale * l.Alpha / l.Rank);
        if (!delta.shape.SequenceEqual(weight.shape))
            throw new InvalidInputException($"LoRA layer '{l.Module}': delta [{Dims(delta)}] does not match the weight [{Dims(weight)}] (the LoRA was made for a different model)");
        using var _ = no_grad();
        weight.add_(delta.to(weight.dtype));
    }
}
