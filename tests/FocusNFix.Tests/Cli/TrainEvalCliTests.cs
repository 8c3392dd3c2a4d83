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
    public void EvalRunTakesTheRunsSettingsAndFlagsOverrideThem()
    {
        var reward = RewardFolder();
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\n");
        // Settings that differ from every eval default: scheduler, eta (recorded; Euler does not use it), steps,
        // guidance, and a mask of exactly the top quarter of the heatmap without dilation.
        var cfg = new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"), OutputDir = Path.Combine(_tmp, "run"), Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 1, Limit = null },
            Sampling = new SamplingConfig { Steps = 3, GuidanceScale = 2, Scheduler = "euler", Eta = 0.25 },
            // Euler's checkpoint recompute reads its step index (issue 9, item 1): no checkpointing until the loop is pure.
            Draft = new DraftConfig { K = 1, Checkpointing = false },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Rewards = new() { new RewardSpec { Type = "region-reward-model", Path = reward } },
            Heatmap = new HeatmapSpec { Type = "reward-model", Path = reward },
            Mask = new FocusNFix.Masks.MaskOptions { TopFraction = 0.25, DilatePixels = 0, Normalise = false },
            Train = new TrainLoopConfig { Steps = 1, BatchSize = 1, CheckpointEvery = 0, SampleEvery = 0 },
        };
        using (var trainer = new FocusNFixTrainer(cfg)) trainer.Train();

        var outDir = Path.Combine(_tmp, "eval-run");
        var (code, stdout, stderr) = CliProcess.Run("eval", "--run", cfg.OutputDir, "--prompts", prompts, "--out", outDir);
        Assert.True(code == 0, stdout + stderr);
        var info = FocusNFix.Pipelines.GenerationInfo.FromPng(Path.Combine(outDir, "images/focus-n-fix/0_1000.png"));
        Assert.Equal(("focus-n-fix", 3, 2.0, "euler", 0.25), (info.Method, info.Steps, info.GuidanceScale, info.Scheduler, info.Eta));
        Assert.Equal(("cpu", "float32"), (info.Device, info.Dtype));
        Assert.Equal(Path.GetFullPath(Path.Combine(cfg.OutputDir, FocusNFixTrainer.FinalPeftName)), info.Lora);
        Assert.Equal(Path.GetFullPath(cfg.Model), info.Model);
        using (var mask = FocusNFix.IO.Images.LoadGray(Path.Combine(outDir, "images/mask/0_1000.png")))
        {
            double share = mask.mean().item<float>();
            Assert.True(share >= 0.25 && share < 0.3, $"the run's mask (top quarter, no dilation) covers {share:P1}");
        }
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "report.json"))))
        {
            var root = doc.RootElement;
            Assert.Equal(new[] { "base", "focus-n-fix" }, root.GetProperty("methods").EnumerateArray().Select(m => m.GetString()));
            Assert.Equal("focus-n-fix", root.GetProperty("curves")[0].GetProperty("method").GetString());
            Assert.All(root.GetProperty("images").EnumerateArray(), i => Assert.True(i.GetProperty("metrics").TryGetProperty("target_reward", out _)));
        }

        // Explicit flags override the run's settings.
        var overridden = Path.Combine(_tmp, "eval-flags");
        (code, stdout, stderr) = CliProcess.Run("eval", "--run", $"fixed={cfg.OutputDir}", "--prompts", prompts, "--steps", "2", "--scheduler", "ddim",
            "--eta", "0", "--out", overridden);
        Assert.True(code == 0, stdout + stderr);
        info = FocusNFix.Pipelines.GenerationInfo.FromPng(Path.Combine(overridden, "images/fixed/0_1000.png"));
        Assert.Equal(("fixed", 2, 2.0, "ddim", 0.0), (info.Method, info.Steps, info.GuidanceScale, info.Scheduler, info.Eta));

        // Without --run the model, reward and heatmap are needed; a folder that is not a run is named.
        (code, _, stderr) = CliProcess.Run("eval", "--prompts", prompts);
        Assert.Equal(2, code);
        Assert.Contains("--model DIR is required", stderr);
        (code, _, stderr) = CliProcess.Run("eval", "--run", _tmp, "--prompts", prompts);
        Assert.Equal(2, code);
        Assert.Contains("config.json: not found", stderr);
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
        (code, _, stderr) = CliProcess.Run("heatmap", "--model", Golden.Case("pipeline_tiny_pixel"), "--heatmap", $"reward-model:{reward}",
            "--prompt", "a", "--dtype", "int8", "--out", Path.Combine(_tmp, "hm2"));
        Assert.Equal(2, code);
        Assert.Contains("--dtype 'int8': expected float32, bfloat16 or float16", stderr);
    }

    [Theory]
    [InlineData("eval")]
    [InlineData("heatmap")]
    [InlineData("demo")]
    public void ModelCommandsTakeDeviceAndDtype(string command)
    {
        var (code, stdout, _) = CliProcess.Run(command, "--help");
        Assert.Equal(0, code);
        Assert.Contains("--device", stdout);
        Assert.Contains("--dtype", stdout);
        // A bad device is refused before anything runs (the demo would otherwise train first).
        var args = command == "heatmap" ? new[] { "--model", _tmp, "--heatmap", $"reward-model:{_tmp}", "--prompt", "a" } : Array.Empty<string>();
        (code, _, var stderr) = CliProcess.Run(args.Prepend(command).Concat(new[] { "--device", "tpu:x" }).ToArray());
        Assert.Equal(2, code);
        Assert.Contains("--device 'tpu:x'", stderr);
    }
}
