using FocusNFix.Pipelines;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests;

public class NativeSettingsTests
{
    // glibc marks a block that has a mapping of its own with bit 0x2 (IS_MMAPPED) of the size word just before it.
    static unsafe bool HasOwnMapping(Tensor t)
    {
        fixed (byte* p = t.bytes) return (*(long*)(p - sizeof(long)) & 2) != 0;
    }

    static bool ThresholdsAreOurs => OperatingSystem.IsLinux() && NativeSettings.Effective()["malloc_mmap_threshold"] == NativeSettings.MallocSetting;

    [Fact]
    public void InsideWeightMappingsABlockOfAMegabyteGetsAMappingOfItsOwnAndTheThresholdComesBackAfterTheLastScope()
    {
        Assert.True(ThresholdsAreOurs, "the suite runs on glibc with the thresholds NativeSettings sets (no MALLOC_*_THRESHOLD_ in the environment)");
        using var before = zeros(NativeSettings.WeightMmapThresholdBytes / 4 * 2);
        Assert.False(HasOwnMapping(before));
        var outer = NativeSettings.WeightMappings();
        var inner = NativeSettings.WeightMappings();
        using var inside = zeros(NativeSettings.WeightMmapThresholdBytes / 4 * 2);
        using var small = zeros(1024);
        Assert.True(HasOwnMapping(inside));
        Assert.False(HasOwnMapping(small));
        inner.Dispose();
        using var stillInside = zeros(NativeSettings.WeightMmapThresholdBytes / 4 * 2);
        Assert.True(HasOwnMapping(stillInside));
        outer.Dispose();
        outer.Dispose(); // a second Dispose must not end another scope
        using var after = zeros(NativeSettings.WeightMmapThresholdBytes / 4 * 2);
        Assert.False(HasOwnMapping(after));
    }

    [Fact]
    public void ALoadedPipelinesLargeWeightsHaveMappingsOfTheirOwnAndTheForwardPassesTemporariesDoNot()
    {
        Assert.True(ThresholdsAreOurs, "the suite runs on glibc with the thresholds NativeSettings sets");
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_sd15"));
        var large = pipe.TextEncoder.parameters().Concat(pipe.Unet.parameters()).Concat(pipe.Vae!.parameters())
            .Where(p => p.NumberOfElements * p.ElementSize >= NativeSettings.WeightMmapThresholdBytes).ToList();
        Assert.NotEmpty(large); // the token embedding, 6 MiB
        Assert.All(large, p => Assert.True(HasOwnMapping(p)));
        using var temporary = zeros(NativeSettings.WeightMmapThresholdBytes / 4 * 2);
        Assert.False(HasOwnMapping(temporary));
    }
}
