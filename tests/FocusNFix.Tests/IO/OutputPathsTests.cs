using FocusNFix.IO;
using Xunit;

namespace FocusNFix.Tests.IO;

public class OutputPathsTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-output-paths-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void ExistingFilesAndNonEmptyFoldersAreRefusedUnlessOverwrite()
    {
        string file = Path.Combine(_dir, "a.json"), empty = Path.Combine(_dir, "empty"), full = Path.Combine(_dir, "full"), absent = Path.Combine(_dir, "absent");
        File.WriteAllText(file, "x");
        Directory.CreateDirectory(empty);
        Directory.CreateDirectory(full);
        File.WriteAllText(Path.Combine(full, "b"), "y");

        OutputPaths.RefuseExisting(new[] { empty, absent }, overwrite: false);
        var e = Assert.Throws<InvalidInputException>(() => OutputPaths.RefuseExisting(new[] { absent, file, full }, overwrite: false, outOption: "--dir"));
        Assert.Equal($"{file}: already exists (and 1 more); pass --overwrite to replace, or choose another --dir", e.Message);
        OutputPaths.RefuseExisting(new[] { file, full }, overwrite: true);
    }
}
