using FocusNFix.IO;
using FocusNFix.Rewards;
using FocusNFix.Tests.Rewards;
using FocusNFix.Training;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

/// <summary>A stand-in reward: the mean of the red channel; optionally NaN on chosen calls (for the guard).</summary>
sealed class RedReward : IReward
{
    public int Calls;
    public HashSet<int> NanOnCalls { get; } = new();
    public string Name => "red";
    public void To(Device device) { }
    public Tensor Score(Tensor images, IReadOnlyList<string> prompts)
    {
        Calls++;
        var r = images[.., 0].mean(new long[] { 1, 2 });
        return NanOnCalls.Contains(Calls) ? r * double.NaN : r;
    }
}

public class FocusNFixTrainerTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-train-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    TrainingConfig Config(string name, int steps, string objective = "focus-n-fix")
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\na blue square in the center on a gray background\n");
        return new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"),
            Objective = objective,
            OutputDir = Path.Combine(_tmp, name),
            Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 1, Limit = null },
            Sampling = new SamplingConfig { Steps = 4, GuidanceScale = 2.0 },
            Draft = new DraftConfig { K = 2 },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Optimizer = new OptimizerConfig { LearningRate = 5e-3, WarmupSteps = 1 },
            Train = new TrainLoopConfig { Steps = steps, BatchSize = 2, CheckpointEvery = 2, SampleEvery = 0 },
        };
    }

    // The heatmap marks the top half of every image as the problem region.
    static readonly IHeatmapSource TopHalf = FunctionHeatmap.TopHalf();

    [Fact]
    public void ShortRunRaisesTheReward()
    {
        using var trainer = new FocusNFixTrainer(Config("raise", 8, "draft"), reward: new RedReward(), heatmapOverride: TopHalf);
        var log = trainer.Train();
        Assert.Equal(8, log.Count);
        Assert.True(log[^1].Reward > log[0].Reward + 1e-3, $"reward {log[0].Reward} -> {log[^1].Reward}");
        Assert.True(File.Exists(Path.Combine(trainer.RunDir, FocusNFixTrainer.FinalPeftName)));
        Assert.True(File.Exists(Path.Combine(trainer.RunDir, FocusNFixTrainer.FinalKohyaName)));
    }

    [Fact]
    public void ResumeEqualsUninterrupted()
    {
        using (var full = new FocusNFixTrainer(Config("full", 4), reward: new RedReward(), heatmapOverride: TopHalf)) full.Train();
        using (var first = new FocusNFixTrainer(Config("resumed", 4), reward: new RedReward(), heatmapOverride: TopHalf)) first.Train(stopAfter: 2);
        Assert.False(File.Exists(Path.Combine(_tmp, "resumed", FocusNFixTrainer.FinalPeftName)));
        using (var second = new FocusNFixTrainer(Config("resumed", 4), resume: true, reward: new RedReward(), heatmapOverride: TopHalf))
        {
            Assert.Equal(2, second.StartStep);
            second.Train();
        }
        var a = Safetensors.Load(Path.Combine(_tmp, "full", FocusNFixTrainer.FinalPeftName));
        var b = Safetensors.Load(Path.Combine(_tmp, "resumed", FocusNFixTrainer.FinalPeftName));
        Assert.Equal(a.Keys.OrderBy(k => k), b.Keys.OrderBy(k => k));
        double max = a.Keys.Max(k => (a[k] - b[k]).abs().max().item<float>());
        Assert.True(max <= 1e-6, $"max difference {max}");
        Assert.True(a.Values.Any(t => t.abs().max().item<float>() > 0), "the LoRA did not train at all");
        Assert.Equal(4, File.ReadAllLines(Path.Combine(_tmp, "resumed", FocusNFixTrainer.LogName)).Length);
    }

    [Fact]
    public void NanLossIsSkippedCountedAndNeverReachesTheWeights()
    {
        var reward = new RedReward();
        reward.NanOnCalls.Add(2);
        using var trainer = new FocusNFixTrainer(Config("nan", 3), reward: reward, heatmapOverride: TopHalf);
        var log = trainer.Train();
        Assert.False(log[0].Skipped);
        Assert.True(log[1].Skipped);
        Assert.False(log[2].Skipped);
        Assert.Equal(1, trainer.SkippedSteps);
        foreach (var p in trainer.Lora.TrainableParameters())
            Assert.True(p.isfinite().all().item<bool>());
        var saved = Safetensors.Load(Path.Combine(trainer.RunDir, FocusNFixTrainer.FinalPeftName));
        Assert.All(saved.Values, t => Assert.True(t.isfinite().all().item<bool>()));
    }

    [Fact]
    public void ARunWhoseEveryStepIsSkippedFailsAndWritesNoLora()
    {
        var reward = new RedReward();
        for (int i = 1; i <= 10; i++) reward.NanOnCalls.Add(i);
        using var trainer = new FocusNFixTrainer(Config("all-nan", 2), reward: reward, heatmapOverride: TopHalf);
        var e = Assert.Throws<TrainingFailedException>(() => trainer.Train());
        Assert.Contains("every one of the 2 steps was skipped", e.Message);
        Assert.False(File.Exists(Path.Combine(trainer.RunDir, FocusNFixTrainer.FinalPeftName)));
    }

    [Fact]
    public void AdamWRefusesAnUpdateThatWouldMakeAWeightNonFinite()
    {
        var p = new TorchSharp.Modules.Parameter(tensor(new float[] { 1f, 2f }));
        using var opt = new AdamW(new[] { p }, lr: 1e-3, weightDecay: 0);
        p.grad = tensor(new float[] { 0.5f, -0.5f });
        Assert.True(opt.Step());
        var after1 = p.detach().clone();
        // An overflowing gradient: v = g^2 overflows to +Inf, so the update would be NaN/Inf.
        p.grad = tensor(new float[] { 1e30f, 1f });
        Assert.False(opt.Step());
        Assert.Equal(1, opt.StepCount);
        Assert.Equal(0f, (p.detach() - after1).abs().max().item<float>());
        Assert.All(opt.StateDict().Values, t => Assert.True(t.isfinite().all().item<bool>()));
    }

    [Fact]
    public void ExistingRunNeedsResumeAndResumeNeedsACheckpoint()
    {
        var cfg = Config("guard", 2);
        Assert.Contains("no checkpoint", Assert.Throws<InvalidInputException>(() => new FocusNFixTrainer(cfg, resume: true, reward: new RedReward(), heatmapOverride: TopHalf)).Message);
        using (var t = new FocusNFixTrainer(Config("guard2", 4), reward: new RedReward(), heatmapOverride: TopHalf)) t.Train(stopAfter: 2);
        Assert.Contains("--resume", Assert.Throws<InvalidInputException>(() => new FocusNFixTrainer(Config("guard2", 4), reward: new RedReward(), heatmapOverride: TopHalf)).Message);
    }

    [Fact]
    public void PrintedDefaultConfigRoundTripsAndBadValuesAreNamed()
    {
        var path = Path.Combine(_tmp, "c.json");
        File.WriteAllText(path, new TrainingConfig().ToJson());
        var back = TrainingConfig.Load(path);
        // Loading resolves the heatmap path by its type: reward-model takes the first region reward's model.
        var expected = new TrainingConfig();
        expected.Heatmap.Path = expected.Rewards[0].Path;
        Assert.Equal(expected.ToJson(), back.ToJson());
        File.WriteAllText(path, new TrainingConfig().ToJson().Replace("\"focus-n-fix\"", "\"fix-everything\""));
        Assert.Contains("objective", Assert.Throws<InvalidInputException>(() => TrainingConfig.Load(path)).Message);
        File.WriteAllText(path, "{\"no_such_field\": 1}");
        Assert.Contains("no_such_field", Assert.Throws<InvalidInputException>(() => TrainingConfig.Load(path)).Message);
    }

    [Fact]
    public void UnsetSamplingIsTheModelsRecommendedAndTheRunFolderRecordsIt()
    {
        // The golden pixel pipeline, with a recommended sampling written into its model_index.json.
        var model = Path.Combine(_tmp, "model");
        var src = Golden.Case("pipeline_tiny_pixel");
        foreach (var f in Directory.GetFiles(src, "*", SearchOption.AllDirectories))
        {
            var dst = f.Replace(src, model);
            Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
            File.Copy(f, dst);
        }
        var indexPath = Path.Combine(model, "model_index.json");
        var index = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(indexPath))!.AsObject();
        index["_focusnfix_sampling"] = new System.Text.Json.Nodes.JsonObject { ["steps"] = 3, ["guidance_scale"] = 1.5 };
        File.WriteAllText(indexPath, index.ToJsonString());

        var cfg = Config("resolved", 1);
        cfg.Model = model;
        cfg.Sampling = new SamplingConfig();
        Assert.Null(cfg.Sampling.Steps);
        using (var trainer = new FocusNFixTrainer(cfg, reward: new RedReward(), heatmapOverride: TopHalf))
            Assert.Equal((3, 1.5), (trainer.Config.Sampling.Steps, trainer.Config.Sampling.GuidanceScale));
        var written = TrainingConfig.Load(Path.Combine(_tmp, "resolved", "config.json"));
        Assert.Equal((3, 1.5), (written.Sampling.Steps, written.Sampling.GuidanceScale));

        // K is checked against the resolved step count.
        var tooDeep = Config("too-deep", 1);
        tooDeep.Model = model;
        tooDeep.Sampling = new SamplingConfig();
        tooDeep.Draft = new DraftConfig { K = 4 };
        Assert.Contains("draft.k", Assert.Throws<InvalidInputException>(() => new FocusNFixTrainer(tooDeep, reward: new RedReward(), heatmapOverride: TopHalf)).Message);
    }
}
