using Xunit;

namespace FocusNFix.Tests;

public class NativeSettingsTests
{
    // Whether glibc then maps a given block depends on the free memory its heap already has (it applies the threshold
    // only when the heap must grow), which in this long-lived process depends on every test before: the peaks it
    // buys in a fresh process are measured by `fnf bench --preset sd15` (results/bench-sd), not here.
    [Fact]
    public void WeightMappingsLowersTheThresholdAndTheLastScopeToEndRestoresIt()
    {
        Assert.True(OperatingSystem.IsLinux() && NativeSettings.Effective()["malloc_mmap_threshold"] == NativeSettings.MallocSetting,
            "the suite runs on glibc with the thresholds NativeSettings sets (no MALLOC_*_THRESHOLD_ in the environment)");
        Assert.Equal(NativeSettings.MmapThresholdBytes, NativeSettings.MmapThresholdSet);
        var outer = NativeSettings.WeightMappings();
        Assert.Equal(NativeSettings.WeightMmapThresholdBytes, NativeSettings.MmapThresholdSet);
        var inner = NativeSettings.WeightMappings();
        inner.Dispose();
        Assert.Equal(NativeSettings.WeightMmapThresholdBytes, NativeSettings.MmapThresholdSet);
        inner.Dispose(); // a second Dispose must not end the other scope
        Assert.Equal(NativeSettings.WeightMmapThresholdBytes, NativeSettings.MmapThresholdSet);
        outer.Dispose();
        Assert.Equal(NativeSettings.MmapThresholdBytes, NativeSettings.MmapThresholdSet);
    }
}
