using FocusNFix.Rewards;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static FocusNFix.Tests.Rewards.TinyRewardModels;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Rewards;

public class SaliencyTests : IDisposable
{
    static IReadOnlyList<HeatmapKey> Keys(Tensor images, string prompt = "") => HeatmapKey.Unidentified(images.shape[0], prompt);
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-saliency-").FullName;
    readonly ITestOutputHelper _out;

    public SaliencyTests(ITestOutputHelper output) => _out = output;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>
    /// A model-free reward that penalises strongly red pixels: R = -mean softplus(k (r - (g+b)/2 - t)) / k.
    /// Its gradient is ~0 on grey pixels and ~uniform on red ones.
    /// </summary>
    sealed class RedPenalty : IReward
    {
        public string Name => "red-penalty";
        public void To(Device device) { }
        public Tensor Score(Tensor images, IReadOnlyList<string> prompts)
        {
            using var scope = NewDisposeScope();
            var redness = images[TensorIndex.Colon, 0] - (images[TensorIndex.Colon, 1] + images[TensorIndex.Colon, 2]) / 2;
            return (-nn.functional.softplus(20 * (redness - 0.4)).mean(new long[] { 1, 2 }) / 20).MoveToOuterDisposeScope();
        }
    }

    void AssertLocalises(IHeatmapSource source, Tensor images, int top, int left, int size, string what)
    {
        using var map = source.Compute(images, Keys(images));
        Assert.Equal(new long[] { images.shape[0], 1, images.shape[2], images.shape[3] }, map.shape);
        Assert.Equal(images.dtype, map.dtype);
        Assert.False(map.requires_grad);
        Assert.True(map.min().item<float>() >= 0 && map.max().item<float>() <= 1, $"{what}: map must lie in [0,1]");
        var iou = IoU(map, top, left, size);
        _out.WriteLine($"{what}: IoU {string.Join(", ", iou.Select(v => v.ToString("F3")))}");
        Assert.All(iou, v => Assert.True(v >= 0.5, $"{what}: IoU {v:F3} < 0.5"));
    }

    [Fact]
    public void GradientTimesInputLocalisesThePenalisedPatch()
    {
        using var images = PlantedRedPatch(2, 32, 40, top: 6, left: 20, size: 10);
        AssertLocalises(new GradientSaliency(new RedPenalty()), images, 6, 20, 10, "gradient x input, model-free");
    }

    [Fact]
    public void SmoothGradLocalisesThePenalisedPatch()
    {
        using var images = PlantedRedPatch(2, 32, 40, top: 14, left: 4, size: 12);
        var source = new GradientSaliency(new RedPenalty(), SaliencyMethod.SmoothGrad, samples: 8, noise: 0.15, seed: 5);
        AssertLocalises(source, images, 14, 4, 12, "SmoothGrad, model-free");
        // The noise is seeded: the same call gives the same map.
        using var a = source.Compute(images, Keys(images));
        using var b = source.Compute(images, Keys(images));
        Assert.True((a == b).all().item<bool>());
    }

    [Fact]
    public void SaliencyOfAClipRewardLocalisesThePatch()
    {
        var (clip, mlp) = WriteRedPenaltyAesthetic(_dir);
        using var reward = AestheticReward.FromPretrained(clip, mlp);
        // Patch-aligned on the 8x8 grid of 4-pixel patches: grid rows 2-3, columns 4-5.
        using var images = PlantedRedPatch(2, 32, 32, top: 8, left: 16, size: 8);
        using (var clean = PlantedRedPatch(2, 32, 32, top: 0, left: 0, size: 0))
        using (var withPatch = reward.Score(images, new[] { "" }))
        using (var without = reward.Score(clean, new[] { "" }))
            Assert.True((withPatch < without).all().item<bool>(), "the hand-made reward must penalise the red patch");
        AssertLocalises(new GradCamSaliency(reward), images, 8, 16, 8, "Grad-CAM, CLIP aesthetic");
        AssertLocalises(new GradientSaliency(reward), images, 8, 16, 8, "gradient x input, CLIP aesthetic");
    }

    [Fact]
    public void GradCamMapsThroughTheCenterCrop()
    {
        var (clip, mlp) = WriteRedPenaltyAesthetic(_dir);
        using var reward = AestheticReward.FromPretrained(clip, mlp);
        // 32x64: the tower sees the middle 32x32 (columns 16-47); the patch lies inside it, on the grid.
        using var images = PlantedRedPatch(1, 32, 64, top: 20, left: 24, size: 8);
        AssertLocalises(new GradCamSaliency(reward, blurSigma: 0.5), images, 20, 24, 8, "Grad-CAM through a crop");
        using var map = new GradCamSaliency(reward).Compute(images, Keys(images));
        Assert.Equal(0f, map[0, 0, TensorIndex.Colon, TensorIndex.Slice(0, 12)].max().item<float>());
    }

    [Fact]
    public void GradCamWorksOnEveryClipRewardAndRefusesTheLastLayer()
    {
        using var safety = SafetyReward.FromPretrained(SafetyFolder);
        var clipFolder = WriteClipModelFolder(_dir);
        using var pick = PickScoreReward.FromPretrained(clipFolder, Tokenizer());
        using var images = PlantedRedPatch(2, 40, 36, top: 4, left: 4, size: 8);
        foreach (IVisionTokenReward reward in new IVisionTokenReward[] { safety, pick })
        {
            using var map = new GradCamSaliency(reward).Compute(images, Keys(images, "a red square"));
            Assert.Equal(new long[] { 2, 1, 40, 36 }, map.shape);
            Assert.True(map.isfinite().all().item<bool>());
            Assert.True(map.max().item<float>() <= 1);
        }
        var e = Assert.Throws<InvalidInputException>(() => new GradCamSaliency(safety, layer: -1).Compute(images, Keys(images)));
        Assert.Contains("class token", e.Message);
        e = Assert.Throws<InvalidInputException>(() => new GradCamSaliency(safety, layer: 9).Compute(images, Keys(images)));
        Assert.Contains("0..3", e.Message);
    }

    [Fact]
    public void SaliencyRefusesANonDifferentiableReward()
    {
        var detached = new Detached();
        using var images = torch.rand(1, 3, 8, 8);
        var e = Assert.Throws<InvalidInputException>(() => new GradientSaliency(detached).Compute(images, Keys(images)));
        Assert.Contains("not differentiable", e.Message);
    }

    sealed class Detached : IReward
    {
        public string Name => "detached";
        public void To(Device device) { }
        public Tensor Score(Tensor images, IReadOnlyList<string> prompts) => images.detach().mean(new long[] { 1, 2, 3 });
    }
}
