using System.Diagnostics;
using FocusNFix.IO;
using Xunit;

namespace FocusNFix.Tests.Cli;

/// <summary>Ctrl-C during a long command: exit code 130, one error line, no temporary file, only complete images.</summary>
public sealed class InterruptTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-sigint-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void SigintDuringSamplingExitsWith130AndLeavesNoTemporaryFile()
    {
        var outDir = Path.Combine(_dir, "out");
        // 4 images x 200 steps: the first progress line comes at 10%, long before the end.
        var psi = CliProcess.StartInfo("sample", "--model", Golden.Case("pipeline_tiny_sd15"), "--prompt", "a red circle", "--batch", "4",
            "--steps", "200", "--out", outDir);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            var first = Task.Run(() => p.StandardOutput.ReadLine());
            Assert.True(first.Wait(TimeSpan.FromMinutes(3)), "no progress line within 3 minutes");
            Assert.True(first.Result?.StartsWith("sampling", StringComparison.Ordinal) == true, $"unexpected first line: {first.Result}");
            Assert.False(SigintIgnored(p.Id), "SIGINT is ignored in the child (the test runner was started with SIGINT ignored, e.g. in a background job)");
            using (var kill = Process.Start(new ProcessStartInfo("/bin/kill") { ArgumentList = { "-INT", p.Id.ToString() }, UseShellExecute = false })!)
                kill.WaitForExit();
            var rest = p.StandardOutput.ReadToEndAsync();
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "still running 60 s after SIGINT");
            Assert.Equal(Interruption.ExitCode, p.ExitCode);
            var lines = stderr.Result.Trim().Split('\n');
            Assert.True(lines.Length == 1 && lines[0].StartsWith("error: interrupted", StringComparison.Ordinal), $"stderr:\n{stderr.Result}");
            // fnf lists its images only once all are written: none listed means the run was cut short, not finished.
            Assert.DoesNotContain(outDir, rest.Result);
        }
        finally
        {
            if (!p.HasExited) p.Kill(true);
        }
        var left = Directory.Exists(outDir) ? Directory.GetFiles(outDir, "*", new EnumerationOptions { AttributesToSkip = 0, RecurseSubdirectories = true }) : Array.Empty<string>();
        Assert.Empty(left.Where(f => f.EndsWith(".tmp", StringComparison.Ordinal)));
        foreach (var png in left) PngStructure.Check(png); // whatever was written is complete
    }

    /// <summary>Whether SIGINT (signal 2) is in the process's ignored set (/proc/PID/status, SigIgn).</summary>
    static bool SigintIgnored(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line != null && (Convert.ToUInt64(line[7..].Trim(), 16) & 0x2) != 0;
    }
}
