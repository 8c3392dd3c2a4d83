using System.Text.Json;
using FocusNFix.Rewards;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;
using FocusNFix.WorldModels;
using Xunit;

namespace FocusNFix.Tests.Cli;

/// <summary>End to end through the CLI on the golden tiny pixel pipeline with a small random region reward model.</summary>
public class TrainEvalCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-cli-train-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    string RewardFolder()
    {
        var dir = Path.Combine(_tmp, "reward");
        TorchSharp.torch.manual_seed(3);
        using var m = new RegionRewardModel(new RegionRewardConfig(DefectKind.Hazard, new[] { 4, 4 }));
        m.SavePretrained(dir);
        return dir;
    }

    [Fact]
    public void TrainWritesTheRunFolderThenEvalWritesTheReport()
    {
        var reward = RewardFolder();
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\n");
        var cfg = new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"), OutputDir = Path.Combine(_tmp, "run"), Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 2, Limit = null },
            Sampling = new SamplingConfig { Steps = 3, GuidanceScale = 2 },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Rewards = new() { new RewardSpec { Type = "region-reward-model", Path = reward } },
            Heatmap = new HeatmapSpec { Type = "reward-model", Path = reward },
            Train = new TrainLoopConfig { Steps = 2, BatchSize = 2, CheckpointEvery = 1, SampleEvery = 1 },
        };
        var cfgPath = Path.Combine(_tmp, "config.json");
        File.WriteAllText(cfgPath, cfg.ToJson());
        var (code, stdout, stderr) = CliProcess.Run("train", "--config", cfgPath);
        Assert.True(code == 0, stdout + stderr);
        var run = cfg.OutputDir;
        foreach (var f in new[] { "config.json", "log.jsonl", FocusNFixTrainer.FinalPeftName, FocusNFixTrainer.FinalKohyaName, "originals/0_0.png", "originals/0_0_mask.png" })
            Assert.True(File.Exists(Path.Combine(run, f)), f);
        var events = TensorBoardLog.ReadEvents(Directory.GetFiles(Path.Combine(run, "tensorboard"), "events.out.tfevents*").Single());
        var values = events.Where(e => e.Summary != null).SelectMany(e => e.Summary.Value.Select(v => (e.Step, v))).ToList();
        Assert.Equal(new long[] { 0, 1 }, values.Where(x => x.v.Tag == "train/lr").Select(x => x.Step));
        Assert.Contains("\"guidance_scale\": 2", values.Single(x => x.v.Tag == "config").v.Tensor.StringVal.Single().ToStringUtf8());
        Assert.All(File.ReadAllLines(Path.Combine(run, "log.jsonl")), l => Assert.StartsWith("{\"time\":\"", l));
        // The periodic checkpoint and the final one (a run killed while writing its LoRA resumes from it).
        var ckpts = Directory.GetDirectories(Path.Combine(run, "checkpoints")).Select(Path.GetFileName).OrderBy(n => n).ToList();
        Assert.Equal(2, ckpts.Count);
        Assert.All(ckpts, n => Assert.StartsWith("step-", n));

        var outDir = Path.Combine(_tmp, "eval");
        (code, stdout, stderr) = CliProcess.Run("eval", "--model", Golden.Case("pipeline_tiny_pixel"), "--prompts", prompts, "--seeds", "2",
            "--reward", $"region-reward-model:{reward}", "--heatmap", $"reward-model:{reward}", "--steps", "3", "--guidance", "2",
            "--lora", $"focus-n-fix={Path.Combine(run, FocusNFixTrainer.FinalPeftName)}", "--training-log", $"focus-n-fix={Path.Combine(run, "log.jsonl")}",
            "--out", outDir);
        Assert.True(code == 0, stdout + stderr);
        foreach (var f in new[] { "report.json", "report.md", "report.html", "images/base/0_1000.png", "images/focus-n-fix/0_1001.png" })
            Assert.True(File.Exists(Path.Combine(outDir, f)), f);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "report.json")));
        Assert.Equal(4, doc.RootElement.GetProperty("images").GetArrayLength());
        Assert.Contains("focus-n-fix", stdout);
        var info = FocusNFix.Pipelines.GenerationInfo.FromPng(Path.Combine(outDir, "images/focus-n-fix/0_1001.png"));
        Assert.Equal(("focus-n-fix", 1001L, 3), (info.Method, info.Seed, info.Steps));
        Assert.EndsWith(FocusNFixTrainer.FinalPeftName, info.Lora);
    }

    [Fact]
    public void PrintConfigIsAValidConfig()
    {
        var (code, stdout, _) = CliProcess.Run("train", "--print-config");
        Assert.Equal(0, code);
        var path = Path.Combine(_tmp, "printed.json");
        File.WriteAllText(path, stdout);
        Assert.Equal("focus-n-fix", TrainingConfig.Load(path).Objective);
    }

    [Fact]
    public void HeatmapCommandWritesImageOverlayAndMask()
    {
        var reward = RewardFolder();
        var outDir = Path.Combine(_tmp, "hm");
        var (code, stdout, stderr) = CliProcess.Run("heatmap", "--model", Golden.Case("pipeline_tiny_pixel"), "--heatmap", $"reward-model:{reward}",
            "--prompt", "a red circle", "--seed", "3", "--steps", "2", "--out", outDir);
        Assert.True(code == 0, stdout + stderr);
        foreach (var f in new[] { "0_3_image.png", "0_3_heatmap.png", "0_3_overlay.png", "0_3_mask.png" })
            Assert.True(File.Exists(Path.Combine(outDir, f)), f);
        (code, _, stderr) = CliProcess.Run("heatmap", "--model", Golden.Case("pipeline_tiny_pixel"), "--heatmap", "nonsense:x", "--prompt", "a");
        Assert.Equal(2, code);
        Assert.Contains("nonsense", stderr);
    }
}
