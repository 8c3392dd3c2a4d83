using FocusNFix.IO;
using Xunit;

namespace FocusNFix.Tests.IO;

public class FolderLockTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-folder-lock-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void ASecondHolderWaitsUntilTheFirstReleases()
    {
        var folder = Path.Combine(_dir, "cache");  // created by the lock
        var first = FolderLock.Acquire(folder, "build.lock");
        using var waiting = new ManualResetEventSlim();
        var second = Task.Run(() => FolderLock.Acquire(folder, "build.lock", _ => waiting.Set(), TimeSpan.FromMilliseconds(20)));
        Assert.True(waiting.Wait(TimeSpan.FromSeconds(10)), "the second holder did not find the lock held");
        Assert.False(second.Wait(TimeSpan.FromMilliseconds(300)), "the second holder took a held lock");
        first.Dispose();
        Assert.True(second.Wait(TimeSpan.FromSeconds(10)), "the second holder did not get the released lock");
        second.Result.Dispose();
        // Free again: taken at once, without waiting.
        bool waited = false;
        using (FolderLock.Acquire(folder, "build.lock", _ => waited = true)) { }
        Assert.False(waited);
    }
}
