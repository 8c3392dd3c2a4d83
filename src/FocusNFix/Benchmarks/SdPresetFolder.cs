using System.Text.Json;
using System.Text.Json.Nodes;
using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Benchmarks;

/// <summary>
/// A diffusers pipeline folder built from an <see cref="SdPreset"/> with seeded random weights, kept in a user cache
/// folder (never in the repository) and reused while it is complete and matches the preset. It loads through the
/// normal path (<see cref="Pipelines.TextToImagePipeline.Load"/>), so everything downstream is what a real model gets.
/// </summary>
public static class SdPresetFolder
{
    /// <summary>Written last into a built folder: what it was built from and the size of every file.</summary>
    public const string MarkerName = "focusnfix_preset.json";

    static readonly string[] TokenizerFiles = { "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json" };

    /// <summary>
    /// The cache root: <paramref name="overrideDir"/> when given, else $XDG_CACHE_HOME/focusnfix, else ~/.cache/focusnfix.
    /// </summary>
    public static string CacheRoot(string? overrideDir = null)
    {
        if (!string.IsNullOrEmpty(overrideDir)) return Path.GetFullPath(overrideDir);
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)) return Path.Combine(xdg, "focusnfix");
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (string.IsNullOrEmpty(home)) throw new InvalidInputException("HOME is not set and XDG_CACHE_HOME is not an absolute path: give the cache folder with --cache-dir");
        return Path.Combine(home, ".cache", "focusnfix");
    }

    /// <summary>Where the preset's folder lives under a cache root.</summary>
    public static string PathOf(SdPreset preset, string cacheRoot) => Path.Combine(cacheRoot, "presets", preset.Name);

    /// <summary>Whether <paramref name="folder"/> is a complete build of <paramref name="preset"/> (marker, fingerprint, every file at its size).</summary>
    public static bool IsComplete(string folder, SdPreset preset)
    {
        var marker = Path.Combine(folder, MarkerName);
        if (!File.Exists(marker)) return false;
        JsonObject m;
        try { m = JsonNode.Parse(File.ReadAllText(marker)) as JsonObject ?? throw new JsonException("not an object"); }
        catch (JsonException) { return false; }
        if (m["fingerprint"]?.GetValue<string>() != preset.Fingerprint()) return false;
        if (m["files"] is not JsonObject files || files.Count == 0) return false;
        foreach (var (rel, size) in files)
        {
            var f = new FileInfo(Path.Combine(folder, rel));
            if (!f.Exists || size is null || f.Length != size.GetValue<long>()) return false;
        }
        return true;
    }

    /// <summary>
    /// The preset's folder under <paramref name="cacheRoot"/>, built first when it is absent or stale. The build writes
    /// a temporary sibling folder and renames it into place, so a crash never leaves a half-written model where a
    /// complete one is expected. A folder at that path that this builder did not write is refused, not replaced.
    /// </summary>
    /// <param name="tokenizerDir">the CLIP tokenizer files to copy (vocab.json, merges.txt and, when present, the two configs).</param>
    public static string Ensure(SdPreset preset, string cacheRoot, string tokenizerDir, Action<string>? progress = null)
    {
        var folder = PathOf(preset, cacheRoot);
        if (IsComplete(folder, preset)) return folder;
        if (Directory.Exists(folder) && !File.Exists(Path.Combine(folder, MarkerName)))
            throw new InvalidInputException($"{folder}: exists but is not a preset folder built by fnf (no {MarkerName}): remove it or choose another --cache-dir");
        foreach (var f in new[] { "vocab.json", "merges.txt" })
            InputFile.RequireFile(Path.Combine(tokenizerDir, f), "CLIP tokenizer file");
        Directory.CreateDirectory(Path.GetDirectoryName(folder)!);
        RemoveAbandonedBuilds(folder);
        var tmp = $"{folder}.tmp-{Environment.ProcessId}";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        try
        {
            progress?.Invoke($"building the {preset.Name} preset (seeded random weights) in {folder}");
            Write(preset, tmp, tokenizerDir, progress);
            // Stale (built from another preset version): it carries our marker, so it is ours to replace.
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
            Directory.Move(tmp, folder);
        }
        catch (IOException) when (IsComplete(folder, preset))
        {
            // Another process finished the same build first; its folder is as good as ours.
        }
        finally
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        }
        return folder;
    }

    /// <summary>Temporary build folders of processes that no longer run (killed mid-build) are deleted.</summary>
    static void RemoveAbandonedBuilds(string folder)
    {
        var parent = Path.GetDirectoryName(folder)!;
        var prefix = Path.GetFileName(folder) + ".tmp-";
        foreach (var dir in Directory.EnumerateDirectories(parent, prefix + "*"))
        {
            if (!int.TryParse(Path.GetFileName(dir)[prefix.Length..], out var pid) || pid == Environment.ProcessId) continue;
            if (Directory.Exists($"/proc/{pid}")) continue;
            Directory.Delete(dir, true);
        }
    }

    static void Write(SdPreset preset, string dir, string tokenizerDir, Action<string>? progress)
    {
        var opts = new JsonSerializerOptions { WriteIndented = true };
        void Json(string rel, JsonObject o)
        {
            var p = Path.Combine(dir, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(p)!);
            File.WriteAllText(p, o.ToJsonString(opts) + "\n");
        }
        Json("model_index.json", SdPreset.ModelIndex());
        Json("unet/config.json", preset.Unet);
        Json("vae/config.json", preset.Vae);
        Json("text_encoder/config.json", preset.TextEncoder);
        Json("scheduler/scheduler_config.json", preset.Scheduler);

        // Each component from its own seed, built through the same config readers the loaders use.
        var source = $"(preset {preset.Name})";
        SaveWeights(progress, "unet", Path.Combine(dir, "unet", "diffusion_pytorch_model.safetensors"), preset.Seed,
            () => new UNet2DConditionModel(UNet2DConditionConfig.FromJson(new JsonConfig(preset.Unet, source))));
        SaveWeights(progress, "vae", Path.Combine(dir, "vae", "diffusion_pytorch_model.safetensors"), preset.Seed + 1,
            () => new AutoencoderKL(AutoencoderKLConfig.FromJson(new JsonConfig(preset.Vae, source))));
        SaveWeights(progress, "text_encoder", Path.Combine(dir, "text_encoder", "model.safetensors"), preset.Seed + 2,
            () => new ClipTextModel(ClipTextConfig.FromJson(new JsonConfig(preset.TextEncoder, source))));

        Directory.CreateDirectory(Path.Combine(dir, "tokenizer"));
        foreach (var f in TokenizerFiles)
        {
            var src = Path.Combine(tokenizerDir, f);
            if (File.Exists(src)) File.Copy(src, Path.Combine(dir, "tokenizer", f));
        }

        var files = new JsonObject();
        foreach (var f in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal))
            files[Path.GetRelativePath(dir, f)] = new FileInfo(f).Length;
        Json(MarkerName, new JsonObject
        {
            ["preset"] = preset.Name, ["seed"] = preset.Seed, ["fingerprint"] = preset.Fingerprint(),
            ["note"] = "random weights with the real architecture, for measuring speed and memory; not a usable model",
            ["files"] = files,
        });
    }

    static void SaveWeights(Action<string>? progress, string name, string path, ulong seed, Func<nn.Module> build)
    {
        progress?.Invoke($"  {name}: drawing weights (seed {seed})");
        manual_seed((long)seed);
        using var model = build();
        var weights = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        long count = weights.Values.Sum(t => t.numel());
        progress?.Invoke($"  {name}: {count / 1e6:F1}M parameters -> {path}");
        Safetensors.Save(path, weights, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
