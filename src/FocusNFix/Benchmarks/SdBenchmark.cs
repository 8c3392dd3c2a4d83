using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FocusNFix.Benchmarks;

/// <summary>A process that measures one figure and prints it as the last line of its stdout (a JSON object).</summary>
/// <summary>A child process to run: program, arguments, and environment changes (a null value removes the variable).</summary>
public sealed record ChildCommand(string FileName, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string?>? Environment = null);

/// <summary>What <c>fnf bench --preset</c> measures: preset, pipeline folder, sizes, dtype, threads, repeats, which figures.</summary>
/// <param name="Rounds">how many times each figure is measured on both sides, ours then the peer's, in turn: the machine's
/// speed drifts by a quarter over minutes here, and rounds spread both sides over the same stretch of it.</param>
public sealed record SdBenchOptions(string Preset, string ModelFolder, IReadOnlyList<int> Sizes, string DType, int Threads, int Repeats,
    IReadOnlyList<string> Measurements, int Rounds = 1);

/// <summary>
/// Runs every measurement of <see cref="SdMeasurement"/> at every size, each in its own child process, and, when a peer
/// command is given, the same measurement with the peer (diffusers + peft) right after ours, so both sides see the
/// same machine state; returns the report with both sides and ours/peer ratios.
/// </summary>
public static class SdBenchmark
{
    public static JsonObject Run(SdBenchOptions o, Func<string, int, ChildCommand> ours, Func<string, int, ChildCommand>? peer,
        Action<string>? progress = null, TimeSpan? childTimeout = null)
    {
        var figures = new JsonArray();
        JsonNode? peerInfo = null;
        bool failed = false;
        foreach (int size in o.Sizes)
            foreach (var name in o.Measurements)
            {
                var mineRuns = new List<JsonObject>();
                var theirRuns = new List<JsonObject>();
                for (int round = 0; round < o.Rounds; round++)
                {
                    string of = o.Rounds > 1 ? $" (round {round + 1}/{o.Rounds})" : "";
                    progress?.Invoke($"{name} at {size} px: ours{of}");
                    mineRuns.Add(RunChild(ours(name, size), childTimeout));
                    if (peer is not null && peerInfo?["skipped"] is null)
                    {
                        progress?.Invoke($"{name} at {size} px: peer{of}");
                        var run = RunChild(peer(name, size), childTimeout);
                        if (run["skipped"] is { } why)
                            // The peer's libraries are absent: it says so once and is not asked again.
                            peerInfo = new JsonObject { ["skipped"] = why.DeepClone() };
                        else
                        {
                            peerInfo ??= run["versions"] is { } v ? new JsonObject { ["versions"] = v.DeepClone() } : null;
                            theirRuns.Add(run);
                        }
                    }
                }
                var mine = Combine(mineRuns);
                JsonObject? theirs = theirRuns.Count == 0 ? null : Combine(theirRuns);
                failed |= mine["error"] is not null || theirs?["error"] is not null;
                var row = new JsonObject
                {
                    ["name"] = name, ["size"] = size, ["what"] = SdMeasurement.Descriptions[name],
                    ["ours"] = Summary(mine), ["peer"] = theirs is null ? null : Summary(theirs),
                };
                if (theirs is not null) row["ours_over_peer"] = Ratios(mine, theirs);
                if (theirs is not null && o.Rounds > 1 && theirRuns.Count == mineRuns.Count)
                    row["ours_over_peer_by_round"] = new JsonArray(mineRuns.Zip(theirRuns, Ratios).Select(r => (JsonNode?)r).ToArray());
                figures.Add(row);
                progress?.Invoke($"  {Line(row)}");
            }
        return new JsonObject
        {
            ["preset"] = o.Preset, ["model"] = o.ModelFolder, ["dtype"] = o.DType, ["threads"] = o.Threads, ["batch"] = 1,
            ["repeats"] = o.Repeats, ["rounds"] = o.Rounds, ["sizes"] = new JsonArray(o.Sizes.Select(s => (JsonNode)s).ToArray()),
            ["train_step"] = new JsonObject
            {
                ["no_grad_steps_before_window"] = SdMeasurement.NoGradStepsBeforeWindow, ["guidance_scale"] = SdMeasurement.GuidanceScale,
                ["lora_rank"] = SdMeasurement.LoraRank, ["lambda"] = SdMeasurement.Lambda,
                ["note"] = "short chains: the window's steps plus a few without grad; a full 50-step chain adds ~48 no-grad UNet calls per image",
            },
            ["peer"] = peer is null ? null : peerInfo ?? new JsonObject(),
            ["figures"] = figures,
            ["complete"] = !failed,
        };
    }

    /// <summary>One figure in a line for progress output.</summary>
    static string Line(JsonObject row)
    {
        string Side(JsonNode? s) => s is null ? "-" : s["error"] is { } e ? $"error ({e})" : $"{s["median_s"]:0.###} s, peak {s["peak_rss_mib"]:0} MiB";
        var r = row["ours_over_peer"];
        return $"{row["name"]} {row["size"]}px: ours {Side(row["ours"])}; peer {Side(row["peer"])}" +
            (r is null ? "" : $"; ratio time {r["time"]}, peak {r["peak_rss"]}");
    }

    /// <summary>
    /// One side's rounds of a figure as one result: every timed call, the highest peaks (each round is a fresh process);
    /// a failed round is the result.
    /// </summary>
    internal static JsonObject Combine(IReadOnlyList<JsonObject> rounds)
    {
        if (rounds.Count == 1) return rounds[0];
        if (rounds.FirstOrDefault(r => r["error"] is not null) is { } failed) return failed;
        double? Max(string key) => rounds.All(r => r[key] is not null) ? rounds.Max(r => r[key]!.GetValue<double>()) : null;
        return new JsonObject
        {
            ["seconds"] = new JsonArray(rounds.SelectMany(r => r["seconds"]!.AsArray().Select(n => (JsonNode)n!.GetValue<double>())).ToArray()),
            ["peak_rss_mib"] = Max("peak_rss_mib"), ["model_rss_mib"] = Max("model_rss_mib"), ["warm_rss_mib"] = Max("warm_rss_mib"),
        };
    }

    static JsonObject Summary(JsonObject r)
    {
        if (r["error"] is not null) return r;
        var times = r["seconds"]!.AsArray().Select(n => n!.GetValue<double>()).Order().ToList();
        return new JsonObject
        {
            ["median_s"] = Math.Round(times[times.Count / 2], 3), ["min_s"] = Math.Round(times[0], 3),
            ["seconds"] = new JsonArray(times.Select(t => (JsonNode)Math.Round(t, 3)).ToArray()),
            ["peak_rss_mib"] = Math.Round(r["peak_rss_mib"]!.GetValue<double>(), 0),
            ["model_rss_mib"] = r["model_rss_mib"] is { } m ? Math.Round(m.GetValue<double>(), 0) : null,
            // after the warm-up, where the peak is reset: the peak minus this is what the timed calls themselves allocate
            ["warm_rss_mib"] = r["warm_rss_mib"] is { } w ? Math.Round(w.GetValue<double>(), 0) : null,
        };
    }

    static JsonObject? Ratios(JsonObject mine, JsonObject theirs)
    {
        if (mine["error"] is not null || theirs["error"] is not null) return null;
        double Median(JsonObject r) => r["seconds"]!.AsArray().Select(n => n!.GetValue<double>()).Order().ElementAt(r["seconds"]!.AsArray().Count / 2);
        return new JsonObject
        {
            ["time"] = Math.Round(Median(mine) / Median(theirs), 3),
            ["peak_rss"] = Math.Round(mine["peak_rss_mib"]!.GetValue<double>() / theirs["peak_rss_mib"]!.GetValue<double>(), 3),
        };
    }

    /// <summary>
    /// The line of a failed child's stderr that says what went wrong: fnf's <c>error:</c> line or .NET's
    /// <c>Unhandled exception</c> line (both come before a stack trace), else the last line that is not a frame of
    /// a .NET stack trace (a Python traceback ends with its message).
    /// </summary>
    public static string ErrorLine(IReadOnlyList<string> stderr)
    {
        var lines = stderr.Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        return lines.FirstOrDefault(l => l.StartsWith("error:", StringComparison.Ordinal) || l.StartsWith("Unhandled exception", StringComparison.Ordinal))
            ?? lines.LastOrDefault(l => !l.StartsWith("at ", StringComparison.Ordinal) && !l.StartsWith("--- End of", StringComparison.Ordinal))
            ?? "(no stderr)";
    }

    /// <summary>
    /// Runs a child and returns its last stdout line parsed as a JSON object; a child that fails, times out or prints no
    /// JSON gives <c>{"error": ...}</c> with its exit code and the stderr line that says why (<see cref="ErrorLine"/>),
    /// so the report shows the failure.
    /// </summary>
    public static JsonObject RunChild(ChildCommand c, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(c.FileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in c.Arguments) psi.ArgumentList.Add(a);
        if (c.Environment is not null)
            foreach (var (k, v) in c.Environment)
                if (v is null) psi.Environment.Remove(k);
                else psi.Environment[k] = v;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {c.FileName}");
        var stderr = new List<string>();
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.Add(e.Data); };
        p.BeginErrorReadLine();
        var stdoutTask = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? Timeout.InfiniteTimeSpan))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            return new JsonObject { ["error"] = $"timed out after {timeout!.Value.TotalSeconds:F0} s" };
        }
        p.WaitForExit();
        var stdout = stdoutTask.Result;
        var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        if (p.ExitCode != 0) { lock (stderr) return new JsonObject { ["error"] = $"exit code {p.ExitCode}: {ErrorLine(stderr)}" }; }
        try
        {
            return JsonNode.Parse(last ?? "") as JsonObject ?? new JsonObject { ["error"] = $"printed no JSON object: {last}" };
        }
        catch (JsonException) { return new JsonObject { ["error"] = $"printed no JSON object: {last}" }; }
    }
}
