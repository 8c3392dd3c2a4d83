namespace FocusNFix.IO;

/// <summary>
/// Output folders named by the user. A file (or FIFO, device, link loop) standing where the folder or one of its parents
/// should be is reported before any work starts, instead of an IOException from the first write after minutes of work.
/// </summary>
public static class OutputFolder
{
    /// <summary>
    /// Throws unless <paramref name="path"/> is a folder or can be created as one; creates nothing.
    /// <paramref name="what"/> names it in the error ("--out", "output folder").
    /// </summary>
    public static void Check(string path, string what)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new InvalidInputException($"{what} is empty: expected a folder path");
        var full = Path.GetFullPath(path);
        for (var p = full; p != null; p = Path.GetDirectoryName(p))
        {
            var kind = InputFile.KindOf(p);
            if (kind == PathKind.Folder) return;
            if (kind is PathKind.Missing or PathKind.NotAFolderOnTheWay) continue; // the parent that is no folder is reported below
            if (p == full) throw InputFile.Wrong(path, what, kind, "a folder (or a path to create)");
            throw new InvalidInputException($"{path}: {what} cannot be created: {p} is {(kind == PathKind.File ? "a file" : $"not a folder ({kind})")}, expected a folder");
        }
    }

    /// <summary><see cref="Check"/>, then creates the folder and its parents.</summary>
    public static void Create(string path, string what)
    {
        Check(path, what);
        try { Directory.CreateDirectory(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidInputException($"{path}: {what} cannot be created ({e.Message})", e);
        }
    }
}
