using System.Diagnostics;
using System.Text.Json;
using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Training;
using FocusNFix.ShapesWorld;
using FocusNFix.WorldModels;
using FocusNFix.Rewards;
using Xunit;
using Xunit.Abstractions;

namespace FocusNFix.Tests.Cli;

/// <summary>
/// Issue 10: a run killed with kill -9 at any moment and then resumed (with <c>fnf train --resume</c>, as often as it
/// takes) ends with the LoRA of the uninterrupted run. The runs are real child processes; the exact moments inside a
/// write come from the <see cref="KillPoint"/> test hook, the others from Process.Kill.
/// </summary>
public class KillResumeCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-kill-").FullName;
    readonly ITestOutputHelper _out;
    public KillResumeCliTests(ITestOutputHelper output) => _out = output;
    public void Dispose() => Directory.Delete(_tmp, true);

    const int Steps = 4;
    const int Killed = 137; // 128 + SIGKILL

    string WriteConfig(string name)
    {
        var reward = Path.Combine(_tmp, "reward");
        if (!Directory.Exists(reward))
        {
            TorchSharp.torch.manual_seed(3);
            using var m = new RegionRewardModel(new RegionRewardConfig(DefectKind.Hazard, new[] { 4, 4 }));
            m.SavePretrained(reward);
        }
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\n");
        var cfg = new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"), OutputDir = Path.Combine(_tmp, name), Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 2, Limit = null },
            Sampling = new SamplingConfig { Steps = 3, GuidanceScale = 2 },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Optimizer = new OptimizerConfig { LearningRate = 5e-3, WarmupSteps = 1 },
            Rewards = new() { new RewardSpec { Type = "region-reward-model", Path = reward } },
            Heatmap = new HeatmapSpec { Type = "reward-model", Path = reward },
            Train = new TrainLoopConfig { Steps = Steps, BatchSize = 2, CheckpointEvery = 1, SampleEvery = 1 },
        };
        var path = Path.Combine(_tmp, name + ".json");
        File.WriteAllText(path, cfg.ToJson());
        return path;
    }

    (int Code, string Output) Train(string config, string? killAt, params string[] extra)
    {
        var env = killAt is null ? null : new Dictionary<string, string> { [KillPoint.Variable] = killAt };
        var clock = Stopwatch.StartNew();
        var (code, stdout, stderr) = CliProcess.RunWith(env, new[] { "train", "--config", config }.Concat(extra).ToArray());
        var errors = string.Join(" | ", stderr.Split('\n').Where(l => l.Length > 0 && !l.Contains("NNPACK")));
        _out.WriteLine($"train {string.Join(" ", extra)} kill at {killAt ?? "-"}: exit {code} in {clock.Elapsed.TotalSeconds:F1} s; {errors}");
        return (code, stdout + stderr);
    }

    static List<int> LoggedSteps(string run) =>
        File.ReadAllLines(Path.Combine(run, RunFolder.LogName)).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt32()).ToList();

    static double MaxDiff(string a, string b)
    {
        var x = Safetensors.Load(a);
        var y = Safetensors.Load(b);
        Assert.Equal(x.Keys.OrderBy(k => k), y.Keys.OrderBy(k => k));
        return x.Keys.Max(k => (x[k] - y[k]).abs().max().item<float>());
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void KilledAtAnyMomentAndResumedEndsWithTheUninterruptedLora()
    {
        var refConfig = WriteConfig("uninterrupted");
        var (code, output) = Train(refConfig, null);
        Assert.True(code == 0, output);
        var reference = Path.Combine(_tmp, "uninterrupted");

        var config = WriteConfig("killed");
        var run = Path.Combine(_tmp, "killed");

        // 1. kill -9 from outside, as soon as the run has started (before its first checkpoint: training itself is
        // too quick here to aim at a step from outside; the hooks below aim at those moments).
        using (var p = CliProcess.Start(null, "train", "--config", config))
        {
            var started = Path.Combine(run, RunFolder.ConfigName);
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (!File.Exists(started) && !p.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(5);
            // (Its output is read only afterwards: reading it here would wait for the process to end.)
            Assert.False(p.HasExited, "the run ended before it could be killed");
            p.Kill();
            p.WaitForExit();
            _out.WriteLine($"killed from outside: exit {p.ExitCode}; left {string.Join(", ", Directory.GetFileSystemEntries(run).Select(Path.GetFileName))}");
        }
        Assert.True(File.Exists(Path.Combine(run, RunLock.FileName)), "kill -9 leaves the lock behind");
        Assert.False(File.Exists(Path.Combine(run, RunFolderLora.DiffusersName)), "the run was killed too late for this test");

        // 2. During a checkpoint write (the run resumes from step 0: it had no checkpoint): a half-written
        // checkpoints/step-000002.tmp stays behind. The stale lock is taken over.
        (code, output) = Train(config, "checkpoint-write:2", "--resume");
        Assert.True(code == Killed, output);
        Assert.Contains("stale lock", output);
        Assert.True(Directory.Exists(Path.Combine(run, "checkpoints", "step-000002.tmp")));
        Assert.False(Directory.Exists(Path.Combine(run, "checkpoints", "step-000002")));

        // 3. During the resume itself, right after the checkpoint of step 1 is loaded.
        (code, output) = Train(config, "resume:1", "--resume");
        Assert.True(code == Killed, output);
        Assert.False(Directory.Exists(Path.Combine(run, "checkpoints", "step-000002.tmp")), "the half-written checkpoint is removed");

        // 4. Between checkpoints, right after step 2 is logged.
        (code, output) = Train(config, "after-step:2", "--resume");
        Assert.True(code == Killed, output);
        Assert.Equal(new[] { 0, 1, 2 }, LoggedSteps(run));

        // 5. During the final LoRA write: the diffusers file is written, the PEFT weights only as a temporary file.
        (code, output) = Train(config, $"atomic-write:{PeftAdapterConfig.WeightsName}", "--resume");
        Assert.True(code == Killed, output);
        Assert.True(File.Exists(Path.Combine(run, RunFolderLora.DiffusersName)));
        Assert.False(File.Exists(Path.Combine(run, PeftAdapterConfig.WeightsName)));
        Assert.NotEmpty(Directory.GetFiles(run, $".{PeftAdapterConfig.WeightsName}.*.tmp"));

        // 6. The last resume finishes; a further one says the run is finished.
        (code, output) = Train(config, null, "--resume");
        Assert.True(code == 0, output);
        (code, output) = Train(config, null, "--resume");
        Assert.Equal(2, code);
        Assert.Contains("finished", output);

        foreach (var file in new[] { RunFolderLora.DiffusersName, PeftAdapterConfig.WeightsName, RunFolderLora.KohyaName })
        {
            double diff = MaxDiff(Path.Combine(reference, file), Path.Combine(run, file));
            _out.WriteLine($"{file}: max abs difference {diff}");
            Assert.True(diff <= 1e-6, $"{file}: max abs difference {diff}");
        }
        var trained = Safetensors.Load(Path.Combine(run, RunFolderLora.DiffusersName));
        Assert.True(trained.Values.Any(t => t.abs().max().item<float>() > 0), "the LoRA did not train at all");

        // Each step is logged once, with the uninterrupted run's figures; nothing temporary and no lock is left.
        Assert.Equal(Enumerable.Range(0, Steps), LoggedSteps(run));
        var losses = (string r) => File.ReadAllLines(Path.Combine(r, RunFolder.LogName)).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("loss").GetDouble()).ToList();
        Assert.Equal(losses(reference), losses(run));
        var lossSteps = Directory.GetFiles(Path.Combine(run, RunFolder.TensorBoardFolder)).SelectMany(TensorBoardLog.ReadEvents)
            .Where(e => e.Summary != null && e.Summary.Value.Any(v => v.Tag == "train/loss")).Select(e => (int)e.Step).OrderBy(s => s);
        Assert.Equal(Enumerable.Range(0, Steps), lossSteps);
        Assert.Empty(Directory.GetFileSystemEntries(run, "*.tmp", SearchOption.AllDirectories));
        Assert.False(File.Exists(Path.Combine(run, RunLock.FileName)));
        Assert.Equal(new[] { "step-000003", "step-000004" }, Directory.GetDirectories(Path.Combine(run, "checkpoints")).Select(Path.GetFileName).OrderBy(n => n));
    }
}
