using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace FocusNFix.Training;

/// <summary>
/// A run folder's lock: <c>.lock</c>, a pid file created atomically (FileMode.CreateNew) when a run starts and deleted
/// when it ends, on failure, and on Ctrl-C / SIGTERM, so two runs never write into one folder. It records pid, host and
/// the holder's start time: a lock whose holder is gone (no such pid on this host, or the pid now belongs to a process
/// that started later) is stale and is taken over with a warning; kill -9 leaves such a lock behind.
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string FileName = ".lock";

    /// <summary>A lock file that never got its content (its writer was killed between create and write) counts as stale after this.</summary>
    static readonly TimeSpan EmptyLockGrace = TimeSpan.FromSeconds(10);

    public string Path { get; }
    readonly string _content;
    readonly List<PosixSignalRegistration> _signals = new();
    bool _released;

    RunLock(string path, string content)
    {
        Path = path;
        _content = content;
        // A signal that ends the process skips finally blocks and Dispose; the lock goes first. A handler elsewhere
        // that cancels the signal lets the process unwind, and Dispose then finds the lock already gone.
        foreach (var sig in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP })
            _signals.Add(PosixSignalRegistration.Create(sig, _ => ReleaseOnSignal()));
    }

    /// <summary>
    /// Takes the lock of <paramref name="folder"/> (which must exist), or throws <see cref="InvalidInputException"/>
    /// naming the live holder. A stale lock is taken over and <paramref name="warn"/> is told so.
    /// </summary>
    public static RunLock Acquire(string folder, Action<string> warn)
    {
        var path = System.IO.Path.Combine(folder, FileName);
        var content = Describe(Environment.ProcessId, Environment.MachineName, StartTime(Process.GetCurrentProcess()));
        for (int attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read))
                {
                    fs.Write(System.Text.Encoding.UTF8.GetBytes(content));
                    fs.Flush(true);
                }
                return new RunLock(path, content);
            }
            catch (IOException e) when (!File.Exists(path))
            {
                throw new InvalidInputException($"{path}: cannot create the run's lock file: {e.Message}");
            }
            catch (IOException)
            {
                // Someone holds (or held) the lock: find out whether it is stale.
            }
            string held;
            try { held = File.ReadAllText(path); }
            catch (FileNotFoundException) { continue; }
            var why = StaleReason(held, File.GetLastWriteTimeUtc(path), path);
            // Deleted only if it still holds what was judged stale: another starter may have taken it over meanwhile.
            try { if (File.ReadAllText(path) != held) continue; }
            catch (FileNotFoundException) { continue; }
            File.Delete(path);
            warn($"{path}: took over a stale lock ({why})");
        }
        throw new InvalidInputException($"{path}: other runs keep taking this folder's lock; choose another output_dir");
    }

    /// <summary>Why the lock with this content is stale; throws when its holder may still be running.</summary>
    static string StaleReason(string held, DateTime writtenUtc, string path)
    {
        int pid; string host; long startTicks;
        try
        {
            var root = JsonDocument.Parse(held).RootElement;
            pid = root.GetProperty("pid").GetInt32();
            host = root.GetProperty("host").GetString() ?? "";
            startTicks = root.GetProperty("start_ticks").GetInt64();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            if (DateTime.UtcNow - writtenUtc > EmptyLockGrace) return "unreadable lock file left by a killed run";
            throw new InvalidInputException($"{path}: another run is starting in this folder (its lock file is being written); wait for it or choose another output_dir");
        }
        if (host != Environment.MachineName)
            throw new InvalidInputException($"{path}: the folder is locked by process {pid} on host '{host}'; if no run uses it any more, delete the lock file");
        var holder = TryGetProcess(pid);
        if (holder is null) return $"process {pid} is gone";
        using (holder)
        {
            long actual = StartTime(holder);
            // The pid was reused by a process that started after the holder: the holder is gone.
            if (actual != 0 && startTicks != 0 && Math.Abs(actual - startTicks) > TimeSpan.TicksPerSecond)
                return $"process {pid} is gone (the pid now belongs to another process)";
        }
        throw new InvalidInputException($"{path}: another run (process {pid}{(pid == Environment.ProcessId ? ", this process" : "")}) is using this folder; wait for it to finish or choose another output_dir");
    }

    static Process? TryGetProcess(int pid)
    {
        try
        {
            var p = Process.GetProcessById(pid);
            if (!p.HasExited) return p;
            p.Dispose();
            return null;
        }
        catch (ArgumentException) { return null; }
        catch (InvalidOperationException) { return null; }
    }

    static long StartTime(Process p)
    {
        try { return p.StartTime.ToUniversalTime().Ticks; }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException) { return 0; }
    }

    static string Describe(int pid, string host, long startTicks) =>
        JsonSerializer.Serialize(new { pid, host, start_ticks = startTicks, started = DateTime.UtcNow.ToString("o") }) + "\n";

    /// <summary>Deletes the lock file if it is still this run's. Safe to call more than once.</summary>
    public void Release()
    {
        lock (_signals)
        {
            if (_released) return;
            _released = true;
        }
        if (File.Exists(Path) && File.ReadAllText(Path) == _content) File.Delete(Path);
    }

    void ReleaseOnSignal()
    {
        try { Release(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"warning: {Path}: could not remove the run's lock: {e.Message}");
        }
    }

    public void Dispose()
    {
        foreach (var s in _signals) s.Dispose();
        Release();
    }
}
