using System.Text.Json;
using FocusNFix.Evaluation;
using FocusNFix.Lora;
using FocusNFix.Pipelines;
using FocusNFix.ShapesWorld;
using FocusNFix.WorldModels;
using Xunit;
using Xunit.Abstractions;

namespace FocusNFix.Tests.Distributed;

/// <summary>Issue 14: <c>fnf eval --shard i/3</c> three times and <c>fnf eval merge</c> give the unsharded report's figures exactly.</summary>
public class EvalShardTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-shard-").FullName;
    readonly ITestOutputHelper _out;
    public EvalShardTests(ITestOutputHelper output) => _out = output;
    public void Dispose() => Directory.Delete(_tmp, true);

    [Theory]
    [InlineData(7, 2, 3, new[] { 0, 1, 6 })]
    [InlineData(7, 2, 1, new[] { 0, 1, 2, 3, 4, 5, 6 })]
    [InlineData(7, 32, 1, new[] { 0, 1, 2, 3, 4, 5, 6 })]
    public void ShardsTakeWholeBatchesInTurn(int total, int batch, int count, int[] first)
    {
        Assert.Equal(first, new EvalShard(0, count).Positions(total, batch));
        var all = Enumerable.Range(0, count).SelectMany(i => new EvalShard(i, count).Positions(total, batch)).OrderBy(k => k);
        Assert.Equal(Enumerable.Range(0, total), all);
    }

    [Theory]
    [InlineData("3/3")]
    [InlineData("-1/3")]
    [InlineData("1/0")]
    [InlineData("1")]
    [InlineData("a/b")]
    public void BadShardValuesAreRefusedByName(string text)
    {
        var e = Assert.Throws<InvalidInputException>(() => EvalShard.Parse(text));
        Assert.Contains($"--shard '{text}': expected i/n", e.Message);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void ThreeShardsMergedGiveTheUnshardedReportExactly()
    {
        var model = Golden.Case("pipeline_tiny_pixel");
        var reward = Path.Combine(_tmp, "reward");
        TorchSharp.torch.manual_seed(3);
        using (var m = new RegionRewardModel(new RegionRewardConfig(DefectKind.Hazard, new[] { 4, 4 }))) m.SavePretrained(reward);
        var lora = Path.Combine(_tmp, "lora");
        using (var pipe = TextToImagePipeline.Load(model))
        using (var g = new TorchSharp.torch.Generator(5))
        using (var net = LoraNetwork.Attach(pipe.Unet, new LoraConfig { Rank = 2, Alpha = 2 }, g))
        {
            Lora.LoraTestUtil.RandomizeB(net, 11);
            RunFolderLora.Write(lora, net, model);
        }
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\na blue square in the bottom right on a white background\n");
        string[] Eval(string outDir, params string[] extra) => new[] { "eval", "--model", model, "--prompts", prompts, "--seeds", "3",
            "--reward", $"region-reward-model:{reward}", "--heatmap", $"reward-model:{reward}", "--steps", "3", "--guidance", "2",
            "--lora", $"fixed={lora}", "--batch", "2", "--out", outDir }.Concat(extra).ToArray();

        var whole = Path.Combine(_tmp, "whole");
        var (code, stdout, stderr) = Cli.CliProcess.Run(Eval(whole));
        Assert.True(code == 0, stdout + stderr);
        var shards = new List<string>();
        foreach (var i in new[] { 2, 0, 1 })
        {
            var dir = Path.Combine(_tmp, $"shard{i}");
            (code, stdout, stderr) = Cli.CliProcess.Run(Eval(dir, "--shard", $"{i}/3"));
            Assert.True(code == 0, stdout + stderr);
            shards.Add(dir);
        }
        // A shard missing, or one given twice, is refused before anything is written.
        (code, _, stderr) = Cli.CliProcess.Run(new[] { "eval", "merge", shards[0], shards[1], "--out", Path.Combine(_tmp, "partial") });
        Assert.Equal(2, code);
        Assert.Contains("missing 1/3", stderr);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "partial")));

        var merged = Path.Combine(_tmp, "merged");
        (code, stdout, stderr) = Cli.CliProcess.Run(new[] { "eval", "merge" }.Concat(shards).Concat(new[] { "--out", merged }).ToArray());
        Assert.True(code == 0, stdout + stderr);

        var a = EvaluationResult.Load(Path.Combine(whole, "report.json"));
        var b = EvaluationResult.Load(Path.Combine(merged, "report.json"));
        string Json(object o) => JsonSerializer.Serialize(o, EvaluationResult.JsonOptions);
        Assert.Equal(12, a.Images.Count);
        Assert.Contains(a.Images, i => i.Metrics.ContainsKey(MetricNames.PsnrOutside));
        Assert.Equal(Json(a.Images), Json(b.Images));
        Assert.Equal(Json(a.Summaries), Json(b.Summaries));
        Assert.Equal(Json(a.Rows), Json(b.Rows));
        _out.WriteLine(ReportWriter.MarkdownTable(b));
        Assert.Equal(ReportWriter.MarkdownTable(a), ReportWriter.MarkdownTable(b));
        foreach (var rel in b.Images.Select(i => i.ImagePath).Concat(b.Rows.SelectMany(r => new[] { r.BaseImage!, r.HeatmapOverlay!, r.Mask! }.Concat(r.DiffMaps.Values))))
            Assert.Equal(File.ReadAllBytes(Path.Combine(whole, rel)), File.ReadAllBytes(Path.Combine(merged, rel)));
    }
}
