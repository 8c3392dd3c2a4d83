using FocusNFix.Evaluation;
using FocusNFix.ShapesWorld;
using FocusNFix.Tests.ShapesWorld;
using FocusNFix.WorldModels;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.WorldModels;

public class RegionRewardTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-reward-").FullName;
    static ShapesWorldBenchmark W => TestWorld.Default;

    internal static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    static RegionRewardModel Fresh(DefectKind kind = DefectKind.Hazard, long seed = 1)
    {
        torch.manual_seed(seed);
        var m = new RegionRewardModel(RegionRewardConfig.For(W.Spec, kind));
        m.eval();
        return m;
    }

    /// <summary>Seeds 0.. whose scenes carry the defect (and some that do not), rendered as one batch.</summary>
    static (Tensor Images, Tensor Hazard, Tensor Glitch, RenderedScene[] Scenes) Scenes(int withHazard, int without)
    {
        var scenes = new List<RenderedScene>();
        for (long seed = 0; scenes.Count(s => s.HasHazard) < withHazard || scenes.Count(s => !s.HasHazard) < without; seed++)
        {
            var s = W.Generate(seed);
            if (s.HasHazard ? scenes.Count(x => x.HasHazard) < withHazard : scenes.Count(x => !x.HasHazard) < without) scenes.Add(s);
        }
        var (images, hazard, glitch) = WorldImage.ToBatch(scenes);
        return (images, hazard, glitch, scenes.ToArray());
    }

    [Fact]
    public void AucMatchesHandWorkedExamples()
    {
        // Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of the 4 pairs are ordered right.
        Assert.Equal(0.75, Auc.RocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 12);
        // A tie between a positive and a negative counts one half: pairs (0.5,0.5)=1/2, (0.5,0.2)=1, (0.9,0.5)=1, (0.9,0.2)=1.
        Assert.Equal(3.5 / 4, Auc.RocAuc([0.5, 0.5, 0.9, 0.2], [true, false, true, false]), 12);
        Assert.Equal(1.0, Auc.RocAuc([1, 2, 3, 4], [false, false, true, true]));
        Assert.Equal(0.0, Auc.RocAuc([1, 2, 3, 4], [true, true, false, false]));
        Assert.True(double.IsNaN(Auc.RocAuc([1, 2], [true, true])));
        Assert.Contains("labels", Assert.Throws<InvalidInputException>(() => Auc.RocAuc([1, 2], [true])).Message);
        Assert.Contains("NaN", Assert.Throws<InvalidInputException>(() => Auc.RocAuc([double.NaN, 2], [true, false])).Message);
    }

    [Fact]
    public void HeatmapHasTheImageShapeAndScoreFollowsTheDocumentedFormulas()
    {
        using var scope = NewDisposeScope();
        var m = Fresh();
        var (images, _, _, _) = Scenes(2, 1);
        var heat = m.Heatmap(images);
        Assert.Equal(new long[] { 3, 1, 32, 32 }, heat.shape);
        Assert.True(heat.min().item<float>() > 0 && heat.max().item<float>() < 1);
        var score = m.Score(images, ["ignored"]);
        Assert.Equal(new long[] { 3 }, score.shape);
        Assert.Equal(RegionRewardConfig.LogClean, m.Config.RewardForm);
        var expected = (1 - heat).log().sum(new long[] { 1, 2, 3 }) / m.Config.RewardAreaPixels;
        Assert.True(torch.allclose(score, expected, rtol: 1e-4, atol: 1e-5));
        Assert.Equal(16, m.Config.RewardAreaPixels);
        // The expected-area form, and what a config written before reward_form existed means.
        torch.manual_seed(1);
        var area = new RegionRewardModel(m.Config with { RewardForm = RegionRewardConfig.ExpectedArea });
        area.load_state_dict(m.state_dict());
        area.eval();
        Assert.True(torch.allclose(area.Score(images, []), -heat.sum(new long[] { 1, 2, 3 }) / 16, rtol: 1e-5, atol: 1e-6));
        var legacy = System.Text.Json.Nodes.JsonNode.Parse(m.Config.ToJson())!.AsObject();
        legacy.Remove("reward_form");
        Assert.Equal(RegionRewardConfig.ExpectedArea, RegionRewardConfig.FromJson(new FocusNFix.IO.JsonConfig(legacy, "legacy")).RewardForm);
        legacy["reward_form"] = "squared";
        Assert.Contains("reward_form 'squared'", Assert.Throws<InvalidInputException>(() => RegionRewardConfig.FromJson(new FocusNFix.IO.JsonConfig(legacy, "legacy"))).Message);
        var top = heat.flatten(1).topk(m.Config.ScoreTopK, dim: 1).values.mean(new long[] { 1 });
        Assert.True(torch.allclose(m.DefectScore(images), top, rtol: 1e-5, atol: 1e-7));

        // Fully convolutional: any size, and the heatmap follows the images' dtype.
        var odd = torch.rand(2, 3, 24, 40, dtype: float64);
        var oddHeat = m.Heatmap(odd);
        Assert.Equal(new long[] { 2, 1, 24, 40 }, oddHeat.shape);
        Assert.Equal(float64, oddHeat.dtype);
        Assert.Equal(float32, m.Score(odd, []).dtype);
        Assert.Contains("[B,3,H,W]", Assert.Throws<InvalidInputException>(() => m.Score(torch.rand(3, 32, 32), [])).Message);
        Assert.Equal(15, RegionRewardConfig.For(W.Spec, DefectKind.Glitch).RewardAreaPixels);
    }

    [Fact]
    public void ScoreIsDifferentiableWithRespectToTheImages()
    {
        using var scope = NewDisposeScope();
        var m = Fresh();
        var (images, hazard, _, _) = Scenes(1, 0);
        var x = images.clone().requires_grad_(true);
        m.Score(x, []).sum().backward();
        var g = x.grad!;
        Assert.True(g.isfinite().all().item<bool>());
        Assert.True(g.abs().sum().item<float>() > 0);
        // The defect's own pixels receive gradient.
        Assert.True((g.abs().sum(1, keepdim: true) * hazard).sum().item<float>() > 0);
        Assert.False(m.parameters().All(p => p.grad is null), "the reward model's own weights should also get gradients unless frozen");
    }

    [Fact]
    public void TinyTrainingRunLowersTheLoss()
    {
        using var scope = NewDisposeScope();
        var (extraImages, extraMasks, _, _) = Scenes(3, 3);
        var losses = new List<double>();
        var m = RewardModelTraining.Train(W, new RewardModelTraining.Options("hazard", Steps: 20, BatchSize: 4, LearningRate: 1e-2, Seed: 5),
            extraImages, extraMasks, (step, steps, loss) => { Assert.Equal(20, steps); losses.Add(loss); });
        Assert.Equal(20, losses.Count);
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        Assert.True(losses.TakeLast(5).Average() < 0.5 * losses.Take(5).Average(), $"loss {losses.Take(5).Average():F4} -> {losses.TakeLast(5).Average():F4}");
        Assert.False(m.training);
        Assert.Equal(DefectKind.Hazard, m.Config.Defect);

        // Same seed, same model.
        var again = RewardModelTraining.Train(W, new RewardModelTraining.Options("hazard", Steps: 3, BatchSize: 4, Seed: 9), null, null);
        var twice = RewardModelTraining.Train(W, new RewardModelTraining.Options("hazard", Steps: 3, BatchSize: 4, Seed: 9), null, null);
        Assert.True(Same(again.Heatmap(extraImages), twice.Heatmap(extraImages)));

        Assert.Contains("smoke", Assert.Throws<InvalidInputException>(() =>
            RewardModelTraining.Train(W, new RewardModelTraining.Options("smoke", Steps: 1), null, null)).Message);
        Assert.Contains("together", Assert.Throws<InvalidInputException>(() =>
            RewardModelTraining.Train(W, new RewardModelTraining.Options("hazard", Steps: 1), extraImages, null)).Message);
        Assert.Contains("[N,3,32,32]", Assert.Throws<InvalidInputException>(() =>
            RewardModelTraining.Train(W, new RewardModelTraining.Options("hazard", Steps: 1), torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16))).Message);
    }

    [Fact]
    public void MetricsCountAucAndIoUAsDocumented()
    {
        using var scope = NewDisposeScope();
        var (images, hazard, _, scenes) = Scenes(4, 4);
        var present = WorldAugmentation.OraclePresent(W.Spec, DefectKind.Hazard, images);
        Assert.Equal(scenes.Select(s => s.HasHazard), present.data<bool>().ToArray());

        // The truth as heatmap: IoU 1; scores that rank every positive first: AUC 1.
        var perfect = RewardModelTraining.Metrics(hazard, hazard.sum(new long[] { 1, 2, 3 }), hazard, present);
        Assert.Equal((1.0, 1.0, 4, 8), perfect);
        // Half the mask (rows of the top half of each stamp) gives IoU 1/2; reversed scores give AUC 0.
        var half = hazard * (torch.arange(32).reshape(1, 1, 32, 1) % 4 < 2).to(float32);
        var r = RewardModelTraining.Metrics(half, -hazard.sum(new long[] { 1, 2, 3 }), hazard);
        Assert.Equal(0.0, r.Auc);
        Assert.Equal(0.5, r.MeanIoU, 6);
        Assert.Equal(4, r.Positives);

        var m = Fresh();
        var e = RewardModelTraining.Evaluate(m, images, hazard, present, batchSize: 3);
        Assert.Equal(8, e.Count);
        Assert.Equal(4, e.Positives);
        Assert.InRange(e.Auc, 0, 1);
        Assert.InRange(e.MeanIoU, 0, 1);
        Assert.Contains("[N,1,H,W]", Assert.Throws<InvalidInputException>(() => RewardModelTraining.Metrics(hazard, present, hazard.narrow(0, 0, 2))).Message);
    }

    [Fact]
    public void TensorOracleMasksMatchTheOracleOnRenderedAndAugmentedImages()
    {
        using var scope = NewDisposeScope();
        var (images, hazard, glitch, scenes) = Scenes(6, 6);
        Assert.True(Same(WorldAugmentation.OracleMasks(W.Spec, DefectKind.Hazard, images), hazard));
        Assert.True(Same(WorldAugmentation.OracleMasks(W.Spec, DefectKind.Glitch, images), glitch));
        using var gen = new Generator(3);
        var aug = WorldAugmentation.Apply(images, gen);
        foreach (var kind in new[] { DefectKind.Hazard, DefectKind.Glitch })
        {
            var masks = WorldAugmentation.OracleMasks(W.Spec, kind, aug);
            var present = WorldAugmentation.OraclePresent(W.Spec, kind, aug).data<bool>().ToArray();
            for (int i = 0; i < scenes.Length; i++)
            {
                var verdict = W.Oracle.Defect(WorldImage.FromTensor(aug[i]), kind);
                Assert.Equal(verdict.Mask, masks[i].flatten().data<float>().ToArray().Select(v => v > 0.5f).ToArray());
                Assert.Equal(verdict.Present, present[i]);
            }
        }
    }

    [Fact]
    public void AugmentationIsSeededAndNeverMakesPaletteColoursLookReserved()
    {
        using var scope = NewDisposeScope();
        var clean = Enumerable.Range(0, 400).Select(s => W.Generate(s)).Where(s => !s.HasHazard && !s.HasGlitch).Take(96).ToList();
        var (images, _, _) = WorldImage.ToBatch(clean);
        using var g1 = new Generator(11);
        using var g2 = new Generator(11);
        var a = WorldAugmentation.Apply(images, g1);
        Assert.True(Same(a, WorldAugmentation.Apply(images, g2)));
        Assert.False(Same(a, images));
        Assert.True(a.min().item<float>() >= 0 && a.max().item<float>() <= 1);
        for (int round = 0; round < 5; round++)
        {
            var x = WorldAugmentation.Apply(images, g1);
            Assert.Equal(0, WorldAugmentation.OracleMasks(W.Spec, DefectKind.Hazard, x).sum().item<float>());
            Assert.Equal(0, WorldAugmentation.OracleMasks(W.Spec, DefectKind.Glitch, x).sum().item<float>());
        }
    }

    [Fact]
    public void SaveAndLoadGiveIdenticalOutputs()
    {
        using var scope = NewDisposeScope();
        var m = Fresh(DefectKind.Glitch, seed: 4);
        var folder = Path.Combine(_dir, "reward-glitch");
        m.SavePretrained(folder);
        Assert.True(File.Exists(Path.Combine(folder, "config.json")));
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors")));
        Assert.Empty(Directory.GetFiles(folder, "*.tmp"));
        var config = File.ReadAllText(Path.Combine(folder, "config.json"));
        Assert.Contains("\"_class_name\": \"FocusNFixRegionRewardModel\"", config);
        Assert.Contains("\"defect\": \"glitch\"", config);

        var loaded = RegionRewardModel.FromPretrained(folder);
        Assert.Equal(m.Config.Channels, loaded.Config.Channels);
        Assert.Equal("glitch", loaded.Name);
        var images = torch.rand(3, 3, 32, 32);
        Assert.True(Same(m.Heatmap(images), loaded.Heatmap(images)));
        Assert.True(Same(m.Score(images, []), loaded.Score(images, [])));

        // Loaded rewards are frozen, yet differentiable with respect to the images.
        Assert.All(loaded.parameters(), p => Assert.False(p.requires_grad));
        var x = images.clone().requires_grad_(true);
        loaded.Score(x, []).sum().backward();
        Assert.True(x.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void WrongFoldersGiveClearErrors()
    {
        var judgeFolder = Path.Combine(_dir, "judge");
        torch.manual_seed(2);
        new AlignmentJudge(W.Spec).SavePretrained(judgeFolder);
        var e = Assert.Throws<InvalidInputException>(() => RegionRewardModel.FromPretrained(judgeFolder));
        Assert.Contains("FocusNFixAlignmentJudge", e.Message);
        Assert.Contains("alignment judge", e.Message);
        Assert.Contains("region reward model", e.Message);

        Assert.Contains("not found", Assert.Throws<InvalidInputException>(() => RegionRewardModel.FromPretrained(Path.Combine(_dir, "nothing"))).Message);

        var bad = Path.Combine(_dir, "bad");
        Fresh().SavePretrained(bad);
        var cfg = Path.Combine(bad, "config.json");
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"hazard\"", "\"smoke\""));
        Assert.Contains("defect 'smoke'", Assert.Throws<InvalidInputException>(() => RegionRewardModel.FromPretrained(bad)).Message);
        File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"smoke\"", "\"hazard\"").Replace("\"channels\": [\n    32,", "\"channels\": [\n    16,"));
        Assert.Contains("shape mismatch", Assert.Throws<InvalidInputException>(() => RegionRewardModel.FromPretrained(bad)).Message);
    }

    [Fact]
    public void AdamWMatchesTorchSharpAdamW()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(8);
        var a = nn.Linear(4, 3);
        var b = nn.Linear(4, 3);
        b.load_state_dict(a.state_dict());
        var reference = optim.AdamW(a.parameters(), 0.05, weight_decay: 0.1);
        using var ours = new FocusNFix.Training.AdamW(b.parameters(), 0.05, 0.1);
        var x = torch.randn(16, 4);
        var y = torch.randn(16, 3);
        for (int i = 0; i < 5; i++)
        {
            reference.zero_grad();
            (a.call(x) - y).pow(2).mean().backward();
            reference.step();
            ours.ZeroGrad();
            (b.call(x) - y).pow(2).mean().backward();
            ours.Step();
        }
        Assert.True(torch.allclose(a.weight!, b.weight!, rtol: 1e-5, atol: 1e-6));
        Assert.True(torch.allclose(a.bias!, b.bias!, rtol: 1e-5, atol: 1e-6));
    }
}
