namespace FocusNFix.Tests.Cli;

/// <summary>Every file under a folder with its size and modification time, to prove a command created, removed or changed none.</summary>
public static class FileTree
{
    public static Dictionary<string, string> Snapshot(string root)
    {
        // Hidden files count (temporary files start with a dot); symbolic links are not followed (one is a loop).
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = false };
        return new DirectoryInfo(root).EnumerateFiles("*", options)
            .ToDictionary(f => Path.GetRelativePath(root, f.FullName), f => $"{f.Length} bytes, modified {f.LastWriteTimeUtc:O}");
    }

    public static bool Same(Dictionary<string, string> before, Dictionary<string, string> after, out string difference)
    {
        var added = after.Keys.Except(before.Keys).Select(k => "+" + k);
        var removed = before.Keys.Except(after.Keys).Select(k => "-" + k);
        var changed = before.Keys.Intersect(after.Keys).Where(k => before[k] != after[k]).Select(k => $"~{k} ({before[k]} -> {after[k]})");
        difference = string.Join(", ", added.Concat(removed).Concat(changed));
        return difference.Length == 0;
    }
}
