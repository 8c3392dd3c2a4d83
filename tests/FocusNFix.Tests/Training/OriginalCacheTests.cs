using FocusNFix.Masks;
using FocusNFix.Pipelines;
using FocusNFix.Tests.Rewards;
using FocusNFix.Training;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

public class OriginalCacheTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-cache-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    static readonly PoolEntry[] Pool =
    {
        new(0, "a red circle in the top left on a white background", 0),
        new(1, "a blue square in the center on a gray background", 3),
    };

    readonly FunctionHeatmap _leftHalf = FunctionHeatmap.LeftHalf();
    int _heatmapCalls => _leftHalf.Calls;

    OriginalCache Build(TextToImagePipeline pipe, string folder, string? key, bool zeroMasks = false)
    {
        using var sampler = new PoolSampler(pipe, steps: 3, guidanceScale: 1.0, eta: 0, new GradientWindow(BackpropMode.DraftK, 1, true));
        return OriginalCache.Build(sampler, Pool, _leftHalf, new MaskOptions(), zeroMasks, folder, key: key);
    }

    [Fact]
    public void DiskCacheIsReusedOnlyForTheSameKeyAndPoolAndGlobalReadsZeroMasks()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        var folder = Path.Combine(_tmp, "cache");
        using var first = Build(pipe, folder, "k1");
        Assert.False(first.Reused);
        Assert.Equal(1, _heatmapCalls);
        using var again = Build(pipe, folder, "k1", zeroMasks: true);
        Assert.True(again.Reused);
        Assert.Equal(1, _heatmapCalls); // nothing sampled or scored again
        for (int i = 0; i < Pool.Length; i++)
        {
            using var scope = NewDisposeScope();
            var a = first.Get(i);
            var b = again.Get(i);
            Assert.True(a.Image.eq(b.Image).all().item<bool>());
            Assert.True(a.Noise.eq(b.Noise).all().item<bool>());
            Assert.True(a.Mask.sum().item<float>() > 0);
            Assert.Equal(0f, b.Mask.abs().sum().item<float>()); // the global baseline's view of the same cache
            Assert.True(again.IsProblematic(i)); // the pair still counts as problematic under the global objective
        }
        using var otherKey = Build(pipe, folder, "k2");
        Assert.False(otherKey.Reused);
        Assert.Equal(2, _heatmapCalls);
        using var noKey = Build(pipe, folder, null);
        Assert.False(noKey.Reused);

        // A cache whose manifest is missing (a run killed while writing it) is never reused.
        using var complete = Build(pipe, folder, "k3");
        File.Delete(Path.Combine(folder, OriginalCache.ManifestName));
        using var rebuilt = Build(pipe, folder, "k3");
        Assert.False(rebuilt.Reused);
    }
}
