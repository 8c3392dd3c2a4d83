using System.Diagnostics;
using System.Text.Json;
using FocusNFix.Training;
using Xunit;

namespace FocusNFix.Tests.Training;

public class RunLockTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-lock-").FullName;
    readonly List<string> _warnings = new();
    public void Dispose() => Directory.Delete(_dir, true);

    string LockPath => Path.Combine(_dir, RunLock.FileName);

    void WriteLock(int pid, string host, long startTicks) =>
        File.WriteAllText(LockPath, JsonSerializer.Serialize(new { pid, host, start_ticks = startTicks }));

    static long MyStart() => Process.GetCurrentProcess().StartTime.ToUniversalTime().Ticks;

    [Fact]
    public void ALiveHolderKeepsTheFolderAndReleaseRemovesTheLock()
    {
        using (var held = RunLock.Acquire(_dir, _warnings.Add))
        {
            var doc = JsonDocument.Parse(File.ReadAllText(LockPath)).RootElement;
            Assert.Equal(Environment.ProcessId, doc.GetProperty("pid").GetInt32());
            Assert.Equal(Environment.MachineName, doc.GetProperty("host").GetString());
            var e = Assert.Throws<InvalidInputException>(() => RunLock.Acquire(_dir, _warnings.Add));
            Assert.Contains($"process {Environment.ProcessId}, this process", e.Message);
            Assert.StartsWith(LockPath, e.Message);
        }
        Assert.False(File.Exists(LockPath));
        Assert.Empty(_warnings);
        using (RunLock.Acquire(_dir, _warnings.Add)) Assert.True(File.Exists(LockPath));
    }

    [Fact]
    public void ALockOfADeadProcessIsTakenOverWithAWarning()
    {
        using var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        gone.WaitForExit();
        WriteLock(gone.Id, Environment.MachineName, DateTime.UtcNow.Ticks);
        using (RunLock.Acquire(_dir, _warnings.Add))
            Assert.Equal(Environment.ProcessId, JsonDocument.Parse(File.ReadAllText(LockPath)).RootElement.GetProperty("pid").GetInt32());
        Assert.Contains($"process {gone.Id} is gone", Assert.Single(_warnings));
    }

    [Fact]
    public void ALockWhosePidNowBelongsToANewerProcessIsStale()
    {
        // This process's pid, recorded with a start time an hour before this process started: the holder is gone.
        WriteLock(Environment.ProcessId, Environment.MachineName, MyStart() - TimeSpan.TicksPerHour);
        using (RunLock.Acquire(_dir, _warnings.Add)) { }
        Assert.Contains("pid now belongs to another process", Assert.Single(_warnings));
    }

    [Fact]
    public void ALockFromAnotherHostIsRefused()
    {
        WriteLock(12345, "some-other-host", 0);
        var e = Assert.Throws<InvalidInputException>(() => RunLock.Acquire(_dir, _warnings.Add));
        Assert.Contains("some-other-host", e.Message);
        Assert.True(File.Exists(LockPath));
    }

    [Fact]
    public void AnEmptyLockIsBeingWrittenWhenNewAndStaleWhenOld()
    {
        File.WriteAllText(LockPath, "");
        Assert.Contains("being written", Assert.Throws<InvalidInputException>(() => RunLock.Acquire(_dir, _warnings.Add)).Message);
        File.SetLastWriteTimeUtc(LockPath, DateTime.UtcNow.AddMinutes(-1));
        using (RunLock.Acquire(_dir, _warnings.Add)) { }
        Assert.Contains("unreadable", Assert.Single(_warnings));
    }
}
