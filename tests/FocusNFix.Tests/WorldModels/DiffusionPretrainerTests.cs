using FocusNFix.Models;
using FocusNFix.ShapesWorld;
using FocusNFix.WorldModels;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.WorldModels;

public class DiffusionPretrainerTests
{
    [Fact]
    public void TwentyStepsOfBaseModelTrainingLowerTheLoss()
    {
        var world = ShapesWorldBenchmark.Default();
        var tok = ClipTokenizer.FromFolder(Golden.Case("clip_tokenizer"));
        manual_seed(0);
        using var unet = BaseModelRecipe.NewUNet(world.Spec.ImageSize);
        using var text = BaseModelRecipe.NewTextEncoder();
        var schedule = BaseModelRecipe.NewScheduler();
        // One fixed batch, so the loss can only fall by learning it.
        var scenes = Enumerable.Range(0, 8).Select(s => world.Generate(s, Split.Train)).ToList();
        var (images, hz, gl) = WorldImage.ToBatch(scenes);
        var prompts = scenes.Select(s => s.Prompt).ToList();
        var losses = new List<double>();
        var o = new PretrainOptions { Steps = 20, BatchSize = 8, LearningRate = 2e-3, WarmupSteps = 1, UncondProbability = 0, PredictionType = BaseModelRecipe.PredictionType };
        var result = DiffusionPretrainer.Train(unet, text, tok, schedule.AlphasCumprod, _ => (images.clone(), prompts), o, (d, t, l) => losses.Add(l));
        Assert.Equal(20, losses.Count);
        Assert.True(losses[^1] < losses[0], $"smoothed loss {losses[0]} -> {losses[^1]}");
        Assert.Equal(unet.state_dict().Keys.OrderBy(k => k), result.UnetWeights.Keys.OrderBy(k => k));
        Assert.All(result.UnetWeights.Values, t => Assert.True(t.isfinite().all().item<bool>()));
    }
}
