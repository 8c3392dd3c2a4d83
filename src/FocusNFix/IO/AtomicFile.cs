using System.Text;

namespace FocusNFix.IO;

/// <summary>
/// Writes files through a temporary file and a rename, so a crash never leaves a half-written output. A write that
/// fails (a full disk, a vanished folder) deletes its temporary file and reports the target in one
/// <see cref="InvalidInputException"/>; <see cref="Abandon"/> deletes the temporary files of writes still in flight
/// when the process is interrupted (Ctrl-C), where no finally block runs.
/// </summary>
public static class AtomicFile
{
    static readonly object Gate = new();
    static readonly HashSet<string> InFlight = new(StringComparer.Ordinal);
    static bool _abandoned;

    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        OutputFolder.Create(dir, "output folder");
        var kind = InputFile.KindOf(full);
        if (kind is not (PathKind.Missing or PathKind.File))
            throw InputFile.Wrong(path, "output file", kind, "a regular file to replace (or a new path)");
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            FileStream fs;
            // Registered and created under the lock, so Abandon sees every temporary file that exists.
            lock (Gate)
            {
                if (_abandoned) throw new OperationCanceledException($"{path}: not written, the process is being interrupted");
                InFlight.Add(tmp);
                fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write);
            }
            using (fs)
            {
                write(fs);
                fs.Flush(true);
            }
            lock (Gate)
            {
                if (_abandoned) throw new OperationCanceledException($"{path}: not written, the process is being interrupted");
                File.Move(tmp, full, overwrite: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // ENOSPC and its kin arrive as plain IOExceptions that name the temporary file; the user knows the target.
            throw new InvalidInputException($"{path}: cannot write the file ({Reason(e, tmp)}); no partial file was left", e);
        }
        finally
        {
            lock (Gate)
            {
                InFlight.Remove(tmp);
                if (File.Exists(tmp)) File.Delete(tmp);
            }
        }
    }

    static string Reason(Exception e, string tmp) => e.Message.Replace($" : '{tmp}'", "", StringComparison.Ordinal).Replace(tmp, "the temporary file", StringComparison.Ordinal);

    public static void WriteAllText(string path, string text) => Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));

    /// <summary>
    /// Deletes the temporary files of the writes in flight and makes every later write fail; returns how many were
    /// deleted. For an interrupted process, just before it exits.
    /// </summary>
    public static int Abandon()
    {
        lock (Gate)
        {
            _abandoned = true;
            int removed = 0;
            foreach (var tmp in InFlight)
            {
                try
                {
                    if (File.Exists(tmp)) { File.Delete(tmp); removed++; }
                }
                catch (IOException) { } // the process exits next; a file that cannot be deleted now cannot be later either
            }
            InFlight.Clear();
            return removed;
        }
    }
}
