using System.Runtime.InteropServices;

namespace FocusNFix.IO;

/// <summary>What a path names, symbolic links followed.</summary>
public enum PathKind { Missing, File, Folder, Fifo, CharDevice, BlockDevice, Socket, SymlinkLoop, NotAFolderOnTheWay, NoPermission }

/// <summary>
/// Checks the type of a user-given input path before it is opened. Opening a FIFO for reading blocks until a writer
/// appears (fnf hung forever on one given as a config or LoRA), a character device such as /dev/zero reports size 0 or
/// never ends, and a symbolic link loop surfaces as a bare IOException; each of these becomes one clear
/// <see cref="InvalidInputException"/> that names the path and what was expected.
/// </summary>
public static class InputFile
{
    // statx(2) has one layout on every Linux architecture (stat's differs), so the file type is read without guessing
    // a struct: stx_mode is the u16 at byte 28 of the 256-byte struct statx.
    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    static extern int StatX(int dirfd, string path, int flags, uint mask, byte[] buffer);

    const int AtFdCwd = -100;
    const uint StatxType = 0x1;
    const int ENOENT = 2, EACCES = 13, ENOTDIR = 20, ENAMETOOLONG = 36, ELOOP = 40;
    static bool _noStatx;

    /// <summary>The kind of <paramref name="path"/>, following symbolic links.</summary>
    public static PathKind KindOf(string path)
    {
        if (string.IsNullOrEmpty(path)) return PathKind.Missing;
        if (!_noStatx && OperatingSystem.IsLinux())
        {
            try
            {
                var buffer = new byte[256];
                if (StatX(AtFdCwd, path, 0, StatxType, buffer) == 0) return FromMode(BitConverter.ToUInt16(buffer, 28));
                return Marshal.GetLastPInvokeError() switch
                {
                    ELOOP => PathKind.SymlinkLoop,
                    ENOTDIR => PathKind.NotAFolderOnTheWay,
                    EACCES => PathKind.NoPermission,
                    ENOENT or ENAMETOOLONG => PathKind.Missing,
                    _ => Fallback(path),
                };
            }
            // A libc without statx (older than glibc 2.28, or another C library): the managed checks below.
            catch (EntryPointNotFoundException) { _noStatx = true; }
            catch (DllNotFoundException) { _noStatx = true; }
        }
        return Fallback(path);
    }

    static PathKind FromMode(ushort mode) => (mode & 0xF000) switch
    {
        0x8000 => PathKind.File,
        0x4000 => PathKind.Folder,
        0x1000 => PathKind.Fifo,
        0x2000 => PathKind.CharDevice,
        0x6000 => PathKind.BlockDevice,
        0xC000 => PathKind.Socket,
        _ => PathKind.Missing,
    };

    // Without statx only the distinctions .NET makes are available: file, folder or absent.
    static PathKind Fallback(string path) => Directory.Exists(path) ? PathKind.Folder : File.Exists(path) ? PathKind.File : PathKind.Missing;

    /// <summary>True when <paramref name="path"/> is a regular file (or a link to one).</summary>
    public static bool IsFile(string path) => KindOf(path) == PathKind.File;

    /// <summary>Throws unless <paramref name="path"/> is a regular file; <paramref name="what"/> names it ("config file").</summary>
    public static void RequireFile(string path, string what)
    {
        var kind = KindOf(path);
        if (kind != PathKind.File) throw Wrong(path, what, kind, "a regular file");
    }

    /// <summary>Throws unless <paramref name="path"/> is a folder; <paramref name="what"/> names it ("pipeline folder").</summary>
    public static void RequireFolder(string path, string what)
    {
        var kind = KindOf(path);
        if (kind != PathKind.Folder) throw Wrong(path, what, kind, "a folder");
    }

    /// <summary>The error for a path of the wrong kind, e.g. "x.json: config file is a named pipe (FIFO), expected a regular file".</summary>
    public static InvalidInputException Wrong(string path, string what, PathKind kind, string expected) => new(kind switch
    {
        PathKind.Missing => $"{path}: {what} not found",
        PathKind.NotAFolderOnTheWay => $"{path}: {what} not found (a part of the path is a file, not a folder)",
        PathKind.NoPermission => $"{path}: {what} cannot be read (permission denied)",
        PathKind.SymlinkLoop => $"{path}: {what} is a symbolic link loop (too many levels of symbolic links), expected {expected}",
        _ => $"{path}: {what} is {Describe(kind)}, expected {expected}",
    });

    static string Describe(PathKind kind) => kind switch
    {
        PathKind.File => "a file",
        PathKind.Folder => "a folder",
        PathKind.Fifo => "a named pipe (FIFO)",
        PathKind.CharDevice => "a character device",
        PathKind.BlockDevice => "a block device",
        PathKind.Socket => "a socket",
        _ => kind.ToString(),
    };

    /// <summary>Opens a regular file for reading, after <see cref="RequireFile"/>.</summary>
    public static FileStream OpenRead(string path, string what)
    {
        RequireFile(path, what);
        try { return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read); }
        catch (UnauthorizedAccessException) { throw Wrong(path, what, PathKind.NoPermission, "a regular file"); }
    }

    public static byte[] ReadAllBytes(string path, string what)
    {
        using var fs = OpenRead(path, what);
        var bytes = new byte[fs.Length];
        fs.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>The file as UTF-8 text (a byte-order mark is skipped, as File.ReadAllText does).</summary>
    public static string ReadAllText(string path, string what)
    {
        using var fs = OpenRead(path, what);
        using var reader = new StreamReader(fs, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    public static IEnumerable<string> ReadLines(string path, string what)
    {
        using var fs = OpenRead(path, what);
        using var reader = new StreamReader(fs, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        while (reader.ReadLine() is { } line) yield return line;
    }
}
