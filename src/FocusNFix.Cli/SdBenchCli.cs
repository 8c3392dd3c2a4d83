using System.CommandLine;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using FocusNFix.Benchmarks;
using FocusNFix.IO;
using FocusNFix.Pipelines;
using static TorchSharp.torch;

namespace FocusNFix.Cli;

/// <summary>
/// <c>fnf bench --preset sd15|sd21</c>: Stable-Diffusion-sized figures, each measured in a child process (the hidden
/// <c>fnf bench one</c>), optionally against bench/sd_peer.py (diffusers + peft) measured alternately in the same run.
/// </summary>
public static class SdBenchCli
{
    /// <summary>Timed repeats per figure with --preset: one 512 px training step with K = 4 takes minutes on 2 cores.</summary>
    public const int DefaultRepeats = 2;

    public static readonly Option<string?> Preset = new("--preset") { Description = $"Build (once, in the user cache) and measure a Stable Diffusion-sized pipeline with random weights: {string.Join(", ", SdPreset.Names)}" };
    public static readonly Option<string> Sizes = new("--sizes") { Description = "Image sizes in px for --preset, comma-separated", DefaultValueFactory = _ => "512,256" };
    public static readonly Option<string?> Out = new("--out") { Description = "Also write the --preset report (JSON) to this file" };
    public static readonly Option<bool> Overwrite = new("--overwrite") { Description = "Replace the --out file if it exists" };
    public static readonly Option<bool> Peer = new("--peer") { Description = "With --preset: measure diffusers + peft (bench/sd_peer.py) on the same operations, alternately with ours" };
    public static readonly Option<string> PeerNative = new("--peer-native")
    {
        Description = "The peer's native settings: own (torch's defaults, as a diffusers user runs it) or same (the settings fnf sets for itself: sleeping OpenMP threads)",
        DefaultValueFactory = _ => "own",
    };
    public static readonly Option<string?> PeerScript = new("--peer-script") { Description = "The peer script (default: bench/sd_peer.py found above the current folder or the fnf binary)" };
    public static readonly Option<string> Python = new("--python") { Description = "Python interpreter for the peer (Debian's, where python3-torch installs)", DefaultValueFactory = _ => "/usr/bin/python3" };
    public static readonly Option<string?> CacheDir = new("--cache-dir") { Description = "Cache folder for preset models (default: $XDG_CACHE_HOME/focusnfix or ~/.cache/focusnfix)" };
    public static readonly Option<string> Tokenizer = new("--tokenizer") { Description = "CLIP tokenizer files copied into a preset", DefaultValueFactory = _ => "../shared/golden/clip_tokenizer" };
    public static readonly Option<int> Rounds = new Option<int>("--rounds") { Description = "With --preset: measure each figure this many times on each side, ours and the peer's in turn (the machine's speed drifts; rounds share it out)", DefaultValueFactory = _ => 1 }.AtLeast(1);
    public static readonly Option<string?> Measure = new("--measure") { Description = $"With --preset: only these figures, comma-separated ({string.Join(", ", SdMeasurement.Names)})" };

    public static IEnumerable<Option> All => new Option[] { Preset, Sizes, Out, Overwrite, Peer, PeerNative, PeerScript, Python, CacheDir, Tokenizer, Measure, Rounds };

    /// <summary>The preset mode of <c>fnf bench</c>; <paramref name="repeats"/>, <paramref name="threads"/> and <paramref name="dtype"/> are the shared options' values.</summary>
    public static int Run(ParseResult pr, string presetName, int repeats, int threads, string dtype, IEnumerable<Option> presetIncompatible)
    {
        var given = presetIncompatible.Where(o => pr.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
        if (given.Count > 0) throw new InvalidInputException($"--preset {presetName}: {string.Join(", ", given)} apply to --model benchmarks only");
        var preset = SdPreset.ByName(presetName);
        CommonOptions.ParseDType(dtype);
        var sizes = ParseSizes(pr.GetValue(Sizes)!);
        var measurements = pr.GetValue(Measure) is { } m ? m.Split(',', StringSplitOptions.TrimEntries) : SdMeasurement.Names;
        foreach (var name in measurements) SdMeasurement.CheckName(name);
        var outPath = pr.GetValue(Out);
        if (outPath is not null)
        {
            OutputPaths.RefuseExisting(new[] { outPath }, pr.GetValue(Overwrite));
            var dir = Path.GetDirectoryName(Path.GetFullPath(outPath))!;
            InputFile.RequireFolder(dir, "--out folder");
        }
        string? script = pr.GetValue(Peer) ? FindPeerScript(pr.GetValue(PeerScript)) : null;
        var peerNative = pr.GetValue(PeerNative)!;
        if (peerNative is not ("own" or "same")) throw new InvalidInputException($"--peer-native '{peerNative}': expected own or same");
        int effectiveThreads = threads > 0 ? threads : get_num_threads();

        var folder = SdPresetFolder.Ensure(preset, SdPresetFolder.CacheRoot(pr.GetValue(CacheDir)), pr.GetValue(Tokenizer)!, msg => Console.Error.WriteLine(msg));
        var self = ChildTraining.SelfCommand();
        ChildCommand Ours(string name, int size) => new(self[0], self.Skip(1).Concat(new[]
        {
            "bench", "one", "--model", folder, "--measure", name, "--size", size.ToString(), "--dtype", dtype,
            "--repeats", repeats.ToString(), "--threads", effectiveThreads.ToString(),
        }).ToList());
        ChildCommand PeerCommand(string name, int size) => new(pr.GetValue(Python)!, new[]
        {
            script!, "--model", folder, "--measure", name, "--size", size.ToString(), "--dtype", dtype,
            "--repeats", repeats.ToString(), "--threads", effectiveThreads.ToString(),
        }, peerNative == "own" ? PeerEnvironment() : null);
        var report = SdBenchmark.Run(new SdBenchOptions(presetName, folder, sizes, dtype, effectiveThreads, repeats, measurements, pr.GetValue(Rounds)),
            Ours, script is null ? null : PeerCommand, msg => Console.Error.WriteLine(msg));
        report["native_settings"] = JsonSerializer.SerializeToNode(NativeSettings.Effective());
        if (script is not null) report["peer_native_settings"] = peerNative == "own" ? "own: torch's defaults (fnf's own settings removed from its environment)" : "same as fnf's";
        var json = report.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        if (outPath is not null) AtomicFile.WriteAllText(outPath, json + "\n");
        Console.WriteLine(json);
        return report["complete"]!.GetValue<bool>() ? 0 : 1;
    }

    /// <summary>
    /// The peer runs with torch's own defaults: the native settings this process gave itself (oneDNN and MKL held to
    /// SSE4, ATen to AVX2, sleeping OpenMP threads) would otherwise reach it through the environment. Settings the user
    /// exported before starting fnf stay, for both sides.
    /// </summary>
    static Dictionary<string, string?> PeerEnvironment() => NativeSettings.SetHere.ToDictionary(k => k, k => (string?)null);

    static List<int> ParseSizes(string text)
    {
        var sizes = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, out var s) || s <= 0 || s % 8 != 0 || s > Models.ModelSizeEstimate.MaxImageSide)
                throw new InvalidInputException($"--sizes {text}: expected comma-separated positive multiples of 8 up to {Models.ModelSizeEstimate.MaxImageSide} (got '{part}')");
            sizes.Add(s);
        }
        return sizes;
    }

    static string FindPeerScript(string? given)
    {
        if (given is not null)
        {
            InputFile.RequireFile(given, "peer script (--peer-script)");
            return Path.GetFullPath(given);
        }
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                var candidate = Path.Combine(d.FullName, "bench", "sd_peer.py");
                if (File.Exists(candidate)) return candidate;
            }
        throw new InvalidInputException("--peer: bench/sd_peer.py not found above the current folder or the fnf binary: give it with --peer-script");
    }

    /// <summary>The hidden <c>fnf bench one</c>: one measurement in this process, printed as one JSON line.</summary>
    public static Command OneCommand()
    {
        var model = new Option<string>("--model") { Required = true };
        var measure = new Option<string>("--measure") { Required = true };
        var size = new Option<int>("--size") { Required = true };
        var repeats = new Option<int>("--repeats") { DefaultValueFactory = _ => 1 };
        var dtype = CommonOptions.DType();
        var threads = CommonOptions.Threads();
        var cmd = new Command("one", "Measure one figure of --preset in this process (used by fnf bench --preset)") { model, measure, size, repeats, dtype, threads };
        cmd.Hidden = true;
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            SdMeasurement.CheckName(pr.GetValue(measure)!);
            using var pipe = TextToImagePipeline.Load(pr.GetValue(model)!, CPU, CommonOptions.ParseDType(pr.GetValue(dtype)!));
            var r = SdMeasurement.Run(pipe, pr.GetValue(measure)!, pr.GetValue(size), pr.GetValue(repeats));
            Console.WriteLine(new JsonObject
            {
                ["name"] = r.Name, ["size"] = r.Size, ["seconds"] = new JsonArray(r.Seconds.Select(s => (JsonNode)s).ToArray()),
                ["peak_rss_mib"] = r.PeakRssMiB, ["model_rss_mib"] = r.ModelRssMiB, ["warm_rss_mib"] = r.WarmRssMiB, ["peak_reset"] = r.PeakWasReset,
                ["threads"] = get_num_threads(),
            }.ToJsonString());
            return 0;
        }));
        return cmd;
    }
}
