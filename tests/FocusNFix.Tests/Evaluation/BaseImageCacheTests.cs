using FocusNFix.Evaluation;
using FocusNFix.Pipelines;
using FocusNFix.Tests.Rewards;
using FocusNFix.Tests.Training;
using Xunit;

namespace FocusNFix.Tests.Evaluation;

/// <summary>The sweep's base-image cache: a second evaluation with the same sampling reads the base images instead of sampling them, with the same figures.</summary>
public class BaseImageCacheTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-base-cache-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    EvalSetup Setup(string? cache, int steps = 2) => new()
    {
        Prompts = new[] { "a red circle in the top left on a white background", "a blue square in the center on a gray background" },
        Seeds = new long[] { 1000, 1001 }, Steps = steps, GuidanceScale = 1.0, BatchSize = 3,
        Target = new RedReward(), Heatmap = FunctionHeatmap.TopHalf(), PictureRows = 1, BaseImageCache = cache,
    };

    /// <summary>Runs an evaluation and counts the progress reports of the base model's sampling (one per batch when it samples).</summary>
    (EvaluationResult Result, int BaseReports) Evaluate(TextToImagePipeline pipe, EvalSetup setup, string name)
    {
        int reports = 0;
        var result = Evaluator.Run(pipe, setup, Path.Combine(_tmp, name), (what, _, _) => { if (what == "sampling base") reports++; });
        return (result, reports);
    }

    static List<string> Figures(EvaluationResult r) =>
        r.Images.OrderBy(i => (i.Method, i.PromptIndex, i.Seed)).Select(i => $"{i.Method} {i.PromptIndex} {i.Seed} " + string.Join(",", i.Metrics.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}={kv.Value:R}"))).ToList();

    [Fact]
    public void TheSecondEvaluationReadsTheBaseImagesAndGivesTheSameFigures()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        var cache = Path.Combine(_tmp, "cache");
        var fresh = Evaluate(pipe, Setup(null), "fresh");
        var first = Evaluate(pipe, Setup(cache), "first");
        var second = Evaluate(pipe, Setup(cache), "second");
        Assert.Equal(2, fresh.BaseReports);   // 4 images in batches of 3
        Assert.Equal(2, first.BaseReports);
        Assert.Equal(1, second.BaseReports);  // one report: all read at once
        Assert.Single(Directory.GetFiles(cache));
        Assert.Equal(Figures(fresh.Result), Figures(first.Result));
        Assert.Equal(Figures(fresh.Result), Figures(second.Result));
        Assert.Equal(File.ReadAllBytes(Path.Combine(_tmp, "fresh", "images", "base", "1_1001.png")), File.ReadAllBytes(Path.Combine(_tmp, "second", "images", "base", "1_1001.png")));

        // Other sampling is another key: sampled again and kept beside the first.
        var other = Evaluate(pipe, Setup(cache, steps: 3), "other");
        Assert.Equal(2, other.BaseReports);
        Assert.Equal(2, Directory.GetFiles(cache).Length);
    }

    [Fact]
    public void ACacheFileThatHoldsSomethingElseIsRefusedByName()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        var cache = Path.Combine(_tmp, "cache");
        Evaluate(pipe, Setup(cache), "first");
        var file = Directory.GetFiles(cache).Single();
        FocusNFix.IO.Safetensors.Save(file, new Dictionary<string, TorchSharp.torch.Tensor> { ["other"] = TorchSharp.torch.zeros(2) });
        var e = Assert.Throws<InvalidInputException>(() => Evaluate(pipe, Setup(cache), "second"));
        Assert.Contains(file, e.Message);
        Assert.Contains("expected an \"images\" tensor of 4 base images", e.Message);
    }
}
