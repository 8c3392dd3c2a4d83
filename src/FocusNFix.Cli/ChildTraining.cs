using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using FocusNFix.Benchmarks;
using FocusNFix.IO;
using FocusNFix.Training;

namespace FocusNFix.Cli;

/// <summary>
/// Trains one config in a child <c>fnf train</c> process (fnf demo --jobs N): its config goes to a file, its output to a
/// log, and its progress lines to the parent's bar for that method. The demo's evaluation shards run the same way. A process per method, not a thread: torch's
/// thread count and random generator are process-wide, and one process per job keeps each run what it is alone.
/// </summary>
public static partial class ChildTraining
{
    [GeneratedRegex(@"^(?<phase>.+?): (?<done>\d+)/(?<total>\d+) \([^)]*\)(, (?<status>.*))?$")]
    private static partial Regex ProgressLine();

    /// <summary>A child's plain progress line as (phase, done, total, status), or null for any other line.</summary>
    public static (string Phase, int Done, int Total, string? Status)? ParseProgress(string line)
    {
        var m = ProgressLine().Match(line);
        if (!m.Success) return null;
        return (m.Groups["phase"].Value, int.Parse(m.Groups["done"].Value), int.Parse(m.Groups["total"].Value),
            m.Groups["status"].Success ? m.Groups["status"].Value : null);
    }

    /// <summary>How to start this same program again: the apphost itself, or dotnet with the entry assembly.</summary>
    public static string[] SelfCommand()
    {
        var exe = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell the path of the running fnf");
        return Path.GetFileNameWithoutExtension(exe) == "dotnet" ? new[] { exe, Assembly.GetEntryAssembly()!.Location } : new[] { exe };
    }

    /// <summary>Runs <c>fnf train --config <paramref name="configPath"/></c> to the end; returns the run folder or throws with the child's error line and its log.</summary>
    public static string Run(TrainingConfig cfg, bool resume, string name, string configPath, string logPath, Action<string, int, int, string?> progress)
    {
        AtomicFile.WriteAllText(configPath, cfg.ToJson() + "\n");
        var args = new List<string> { "train", "--config", configPath };
        if (resume) args.Add("--resume");
        RunFnf(name, args, logPath, append: resume, progress);
        return cfg.OutputDir;
    }

    /// <summary>
    /// Runs this program with <paramref name="args"/> in a child process to the end, its output to <paramref name="logPath"/>
    /// and its progress lines to <paramref name="progress"/> under <paramref name="name"/>; throws with the child's error
    /// line and the log's path when it fails.
    /// </summary>
    public static void RunFnf(string name, IEnumerable<string> args, string logPath, bool append, Action<string, int, int, string?> progress)
    {
        var self = SelfCommand();
        var psi = new ProcessStartInfo(self[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in self.Skip(1).Concat(args)) psi.ArgumentList.Add(a);
        // The child's bars would fight the parent's: it prints plain progress lines, which the parent reads.
        psi.Environment["TERM"] = "dumb";
        var stderr = new List<string>();
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logPath))!);
        using var log = new StreamWriter(logPath, append) { AutoFlush = true };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {psi.FileName}");
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) { stderr.Add(e.Data); log.WriteLine(e.Data); }
        };
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.WriteLine(e.Data);
            if (ParseProgress(e.Data) is { } pr) progress(name, pr.Done, pr.Total, pr.Status is null ? pr.Phase : $"{pr.Phase}, {pr.Status}");
        };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        p.WaitForExit();
        if (p.ExitCode != 0)
            lock (log) throw new InvalidInputException($"{name}: failed in its process (exit code {p.ExitCode}): {SdBenchmark.ErrorLine(stderr)} (log: {logPath})");
    }
}
