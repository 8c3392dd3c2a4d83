using System.Text;

namespace FocusNFix.IO;

/// <summary>
/// Writes files through a temporary file and a rename, so a crash never leaves a half-written output. A write that
/// fails (a full disk, a vanished folder) deletes its temporary file and reports the target in one
/// <see cref="InvalidInputException"/>; <see cref="TemporaryFiles.Abandon"/> deletes the temporary files of writes still
/// in flight when the process is interrupted (Ctrl-C), where no finally block runs.
/// </summary>
public static class AtomicFile
{
    /// <param name="files">Where the temporary file is tracked; default the process's (<see cref="TemporaryFiles.Process"/>).</param>
    public static void Write(string path, Action<Stream> write, TemporaryFiles? files = null)
    {
        files ??= TemporaryFiles.Process;
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        OutputFolder.Create(dir, "output folder");
        var kind = InputFile.KindOf(full);
        if (kind is not (PathKind.Missing or PathKind.File))
            throw InputFile.Wrong(path, "output file", kind, "a regular file to replace (or a new path)");
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = files.Create(tmp, path))
            {
                write(fs);
                fs.Flush(true);
            }
            KillPoint.Reached("atomic-write", Path.GetFileName(path));
            files.Commit(tmp, full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // ENOSPC and its kin arrive as plain IOExceptions that name the temporary file; the user knows the target.
            throw new InvalidInputException($"{path}: cannot write the file ({Reason(e, tmp)}); no partial file was left", e);
        }
        finally
        {
            files.Release(tmp);
        }
    }

    static string Reason(Exception e, string tmp) => e.Message.Replace($" : '{tmp}'", "", StringComparison.Ordinal).Replace(tmp, "the temporary file", StringComparison.Ordinal);

    public static void WriteAllText(string path, string text) => Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));
}
