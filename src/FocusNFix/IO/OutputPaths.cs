namespace FocusNFix.IO;

/// <summary>
/// A user's files stay theirs: a command lists the files and folders it is about to write and asks here first, before
/// any work, so a long training run never ends by replacing something, or by failing to.
/// </summary>
public static class OutputPaths
{
    /// <summary>
    /// Refuses (one line naming the first path) when any of <paramref name="paths"/> is an existing file or a non-empty
    /// folder, unless <paramref name="overwrite"/>.
    /// </summary>
    /// <param name="outOption">the option that chose the place, for the message.</param>
    public static void RefuseExisting(IEnumerable<string> paths, bool overwrite, string outOption = "--out")
    {
        if (overwrite) return;
        var existing = paths.Where(Occupied).ToList();
        if (existing.Count > 0)
            throw new InvalidInputException($"{existing[0]}: already exists{(existing.Count > 1 ? $" (and {existing.Count - 1} more)" : "")}; " +
                $"pass --overwrite to replace, or choose another {outOption}");
    }

    /// <summary>An existing file, or a folder with anything in it.</summary>
    public static bool Occupied(string path) =>
        File.Exists(path) || (Directory.Exists(path) && Directory.EnumerateFileSystemEntries(path).Any());
}
