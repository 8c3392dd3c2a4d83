namespace FocusNFix.IO;

/// <summary>
/// An exclusive lock that waits: a file in a folder opened with <see cref="FileShare.None"/>, which .NET takes as an
/// advisory flock on Unix. The kernel drops it when the holder exits however it ends, so a killed process leaves no
/// stale lock behind (unlike a pid file); the file itself stays and is harmless. For work that another process may be
/// doing in the same folder at the same moment and that the second should wait for rather than repeat.
/// </summary>
public sealed class FolderLock : IDisposable
{
    readonly FileStream _stream;

    FolderLock(FileStream stream) => _stream = stream;

    public string Path => _stream.Name;

    /// <summary>Takes the lock <paramref name="fileName"/> in <paramref name="folder"/> (created if needed), waiting while another process or another handle in this process holds it.</summary>
    /// <param name="waiting">told once, with the lock's path, when the lock is held elsewhere and this call starts to wait.</param>
    public static FolderLock Acquire(string folder, string fileName, Action<string>? waiting = null, TimeSpan? poll = null)
    {
        Directory.CreateDirectory(folder);
        var path = System.IO.Path.Combine(folder, fileName);
        bool told = false;
        while (true)
        {
            try
            {
                return new FolderLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (File.Exists(path))
            {
                // Held: the sharing violation of an existing file. A missing folder or a full disk fails above instead.
                if (!told) { waiting?.Invoke(path); told = true; }
                Thread.Sleep(poll ?? TimeSpan.FromMilliseconds(200));
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
