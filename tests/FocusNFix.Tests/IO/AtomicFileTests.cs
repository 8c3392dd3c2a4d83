using System.Diagnostics;
using FocusNFix.IO;
using Xunit;

namespace FocusNFix.Tests.IO;

/// <summary>
/// AtomicFile when a write fails or the process is interrupted: no temporary file is left and the target is either the
/// complete new file or untouched. A full disk is simulated by a writer whose stream write fails with the ENOSPC message
/// (always), and produced for real on a 64 KiB tmpfs mounted in a user namespace (where unshare allows it).
/// </summary>
public sealed class AtomicFileTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-atomic-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>A stream that accepts <paramref name="capacity"/> bytes, then fails as a full disk does.</summary>
    sealed class FullDiskStream(Stream inner, long capacity) : Stream
    {
        long _written;
        public override void Write(byte[] buffer, int offset, int count)
        {
            if (_written + count > capacity) throw new IOException("No space left on device");
            inner.Write(buffer, offset, count);
            _written += count;
        }
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _written;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    static void WriteChunks(Stream s, int chunks)
    {
        var chunk = new byte[1000];
        for (int i = 0; i < chunks; i++) s.Write(chunk, 0, chunk.Length);
    }

    [Fact]
    public void FullDiskLeavesNoTemporaryFileAndNamesTheTarget()
    {
        var target = Path.Combine(_dir, "weights.safetensors");
        var e = Assert.Throws<InvalidInputException>(() => AtomicFile.Write(target, s => WriteChunks(new FullDiskStream(s, 2500), 10)));
        Assert.StartsWith($"{target}: cannot write the file (No space left on device)", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void FailedWriteKeepsTheOldFile()
    {
        var target = Path.Combine(_dir, "report.json");
        File.WriteAllText(target, "old");
        Assert.Throws<InvalidInputException>(() => AtomicFile.Write(target, s => WriteChunks(new FullDiskStream(s, 500), 3)));
        Assert.Equal("old", File.ReadAllText(target));
        Assert.Equal(new[] { target }, Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void AbandonDeletesTheTemporaryFileOfAWriteInFlightAndNothingIsRenamed()
    {
        var files = new TemporaryFiles();
        var target = Path.Combine(_dir, "image.png");
        using var writing = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var write = Task.Run(() => AtomicFile.Write(target, s =>
        {
            WriteChunks(s, 2);
            writing.Set();
            release.Wait();
            WriteChunks(s, 2);
        }, files));
        Assert.True(writing.Wait(TimeSpan.FromSeconds(30)));
        Assert.Single(Directory.GetFiles(_dir, "*.tmp"));
        Assert.Equal(1, files.Abandon());
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
        release.Set();
        Assert.ThrowsAny<OperationCanceledException>(() => write.GetAwaiter().GetResult());
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
        Assert.Throws<OperationCanceledException>(() => AtomicFile.Write(Path.Combine(_dir, "later.png"), s => WriteChunks(s, 1), files));
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void AFolderAtTheTargetIsRefused()
    {
        var target = Directory.CreateDirectory(Path.Combine(_dir, "0_0.png")).FullName;
        var e = Assert.Throws<InvalidInputException>(() => AtomicFile.WriteAllText(target, "x"));
        Assert.Contains("0_0.png: output file is a folder", e.Message);
        Assert.Empty(Directory.GetFiles(_dir, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void AFileInPlaceOfTheFolderIsRefused()
    {
        var blocker = Path.Combine(_dir, "images");
        File.WriteAllText(blocker, "x");
        var e = Assert.Throws<InvalidInputException>(() => AtomicFile.WriteAllText(Path.Combine(blocker, "base", "0_0.png"), "x"));
        Assert.Contains($"{blocker} is a file, expected a folder", e.Message);
        Assert.Equal(new[] { blocker }, Directory.GetFileSystemEntries(_dir));
    }

    /// <summary>
    /// fnf sample writing into a full 64 KiB tmpfs: exit code 2, one error line naming the image, no temporary file.
    /// The tmpfs is mounted in a new user and mount namespace (unshare -rm), which needs no root; where the system does
    /// not allow unprivileged user namespaces the test says so and checks nothing more (the simulated full disk above
    /// still covers AtomicFile's cleanup).
    /// </summary>
    [Fact]
    public void SampleOnAFullTmpfsExitsWithOneErrorAndNoTemporaryFile()
    {
        if (!UnshareWorks(out var why))
        {
            Console.WriteLine($"skipped the real tmpfs: {why}");
            return;
        }
        var mount = Directory.CreateDirectory(Path.Combine(_dir, "tmpfs")).FullName;
        var fnf = Path.Combine(AppContext.BaseDirectory, "fnf.dll");
        var outDir = Path.Combine(mount, "out");
        // Fill every page of the tmpfs, then let fnf write its image there; list what is left from inside the namespace.
        var script = $"mount -t tmpfs -o size=64k tmpfs '{mount}' && mkdir '{outDir}' && (head -c 1048576 /dev/zero > '{mount}/fill' 2>/dev/null; true) && " +
            $"dotnet '{fnf}' sample --model '{Golden.Case("pipeline_tiny_sd15")}' --prompt 'a red circle' --steps 1 --out '{outDir}'; " +
            $"echo \"rc=$?\"; ls -A '{outDir}'";
        var (code, stdout, stderr) = Run("unshare", "-rm", "sh", "-c", script);
        Assert.True(code == 0, $"the namespace script failed ({code}): {stderr}");
        // fnf's progress lines, then "rc=N", then the output folder's listing.
        var lines = stdout.Trim().Split('\n').SkipWhile(l => !l.StartsWith("rc=", StringComparison.Ordinal)).ToList();
        Assert.True(lines.FirstOrDefault() == "rc=2", $"expected fnf to exit with 2\nstdout:\n{stdout}\nstderr:\n{stderr}");
        Assert.True(lines.Count == 1, $"files left in the output folder: {string.Join(", ", lines.Skip(1))}");
        var errors = stderr.Trim().Split('\n');
        Assert.True(errors.Length == 1, $"expected one error line:\n{stderr}");
        Assert.StartsWith($"error: {Path.Combine(outDir, "0_0.png")}: cannot write the file (No space left on device", errors[0]);
    }

    static bool UnshareWorks(out string why)
    {
        try
        {
            var (code, _, stderr) = Run("unshare", "-rm", "true");
            why = code == 0 ? "" : $"unshare -rm failed: {stderr.Trim()}";
            return code == 0;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            why = $"no unshare: {e.Message}";
            return false;
        }
    }

    static (int Code, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3))) { p.Kill(true); throw new TimeoutException($"{file} {string.Join(" ", args)}"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
