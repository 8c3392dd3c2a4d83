using FocusNFix.Pipelines;
using FocusNFix.ShapesWorld;
using FocusNFix.WorldModels;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.WorldModels;

/// <summary>The models under models/shapesworld load through the library's normal loaders and work.</summary>
public class BundledModelsTests
{
    static string Models => Path.Combine(Golden.Root, "models", "shapesworld");

    [Fact]
    public void BaseModelLoadsAndSamplesTheWorldsImageSize()
    {
        var world = ShapesWorldBenchmark.Load(Path.Combine(Models, WorldSpec.FileName));
        using var pipe = TextToImagePipeline.Load(Path.Combine(Models, "base"));
        Assert.True(pipe.Folder.IsPixelSpace);
        Assert.Equal((BaseModelRecipe.DefaultSteps, BaseModelRecipe.DefaultGuidance), pipe.Folder.RecommendedSampling);
        var prompt = PromptSplits.Prompts(world.Spec, Split.Test)[0];
        using var r = pipe.Sample(new[] { prompt }, new SampleOptions { Steps = 4, GuidanceScale = BaseModelRecipe.DefaultGuidance, Seeds = new long[] { 1 } });
        Assert.Equal(new long[] { 1, 3, world.Spec.ImageSize, world.Spec.ImageSize }, r.Images.shape);
        Assert.True(r.Images.isfinite().all().item<bool>());
        var report = world.Oracle.Judge(r.Images[0], prompt);
        Assert.Equal(PromptGrammar.Parse(prompt, world.Spec).Objects.Count, report.Objects.Count);
    }

    [Theory]
    [InlineData("reward-hazard", DefectKind.Hazard)]
    [InlineData("reward-glitch", DefectKind.Glitch)]
    [InlineData("reward-rot", DefectKind.Rot)]
    public void RewardModelsLoadAndFindTheirDefectOnARender(string folder, DefectKind kind)
    {
        var world = ShapesWorldBenchmark.Load(Path.Combine(Models, WorldSpec.FileName));
        using var model = RegionRewardModel.FromPretrained(Path.Combine(Models, folder));
        Assert.Equal(kind, model.Config.Defect);
        var scene = Enumerable.Range(0, 200).Select(s => world.Generate(s)).First(s => s.Has(kind));
        var clean = Enumerable.Range(0, 200).Select(s => world.Generate(s)).First(s => !s.HasHazard && !s.HasGlitch && !s.HasRot);
        var (images, _, _) = WorldImage.ToBatch(new[] { scene, clean });
        using var _ = no_grad();
        var score = model.DefectScore(images);
        Assert.True(score[0].item<float>() > 0.5 && score[1].item<float>() < 0.5, $"defect score {score[0].item<float>()} vs clean {score[1].item<float>()}");
        var reward = model.Score(images, new[] { scene.Prompt, clean.Prompt });
        Assert.True(reward[0].item<float>() < reward[1].item<float>());
    }

    [Fact]
    public void JudgeLoadsAndJudgesARenderCorrectly()
    {
        var world = ShapesWorldBenchmark.Load(Path.Combine(Models, WorldSpec.FileName));
        using var judge = AlignmentJudge.FromPretrained(Path.Combine(Models, "judge"));
        var scene = world.Generate(7, Split.Test);
        var (images, _, _) = WorldImage.ToBatch(new[] { scene });
        var verdict = judge.Judge(images, new[] { scene.Prompt })[0];
        Assert.Equal(1.0, verdict.Alignment);
    }

    [Fact]
    public void BundledModelsStayWithinTheSizeBudget()
    {
        long bytes = new DirectoryInfo(Models).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
        Assert.True(bytes <= 40L * 1024 * 1024, $"models/ holds {bytes / 1048576.0:F1} MiB");
    }
}
