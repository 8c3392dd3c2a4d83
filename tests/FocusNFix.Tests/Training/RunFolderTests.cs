using FocusNFix.Lora;
using FocusNFix.Training;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

public class RunFolderTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-runfolder-").FullName;
    readonly List<string> _warnings = new();
    public void Dispose() => Directory.Delete(_tmp, true);

    string Touch(string rel, string text = "x")
    {
        var path = Path.Combine(_tmp, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    TrainingConfig Config(string name, int steps)
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\n");
        return new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"), OutputDir = Path.Combine(_tmp, name), Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 2, Limit = null },
            Sampling = new SamplingConfig { Steps = 3, GuidanceScale = 2.0 },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Train = new TrainLoopConfig { Steps = steps, BatchSize = 2, CheckpointEvery = 1, SampleEvery = 0 },
        };
    }

    static readonly FocusNFix.Rewards.IHeatmapSource TopHalf = FocusNFix.Tests.Rewards.FunctionHeatmap.TopHalf();

    FocusNFixTrainer Trainer(TrainingConfig c, bool resume = false, bool overwrite = false) =>
        new(c, resume, reward: new RedReward(), heatmapOverride: TopHalf, overwrite: overwrite, warn: _warnings.Add);

    [Fact]
    public void AFreshStartRefusesARunAndOverwriteDeletesOnlyTheRunsFiles()
    {
        var run = Path.Combine(_tmp, "run");
        using (var t = Trainer(Config("run", 2)))
        {
            using (var tb = new TensorBoardLog(t.Run.TensorBoardDir)) tb.Scalar("train/loss", 1, 0);
            t.Train();
        }
        // The user's own files, some of them inside the run's folders.
        var mine = new[] { Touch("run/notes.txt"), Touch("run/originals/my-sketch.png"), Touch("run/checkpoints/README"), Touch("run/tensorboard/.keep") };

        var e = Assert.Throws<InvalidInputException>(() => Trainer(Config("run", 2)));
        Assert.Contains("--overwrite", e.Message);
        Assert.Contains("config.json", e.Message);
        Assert.False(File.Exists(Path.Combine(run, RunLock.FileName)), "a refused start releases the lock");

        // A finished run: --resume says so.
        Assert.Contains("finished", Assert.Throws<InvalidInputException>(() => Trainer(Config("run", 2), resume: true)).Message);
        Assert.Contains("exclude each other", Assert.Throws<InvalidInputException>(() => Trainer(Config("run", 2), resume: true, overwrite: true)).Message);

        using (var t = Trainer(Config("run", 1), overwrite: true))
        {
            Assert.Empty(Directory.GetFiles(t.Run.TensorBoardDir, "events.out.tfevents*"));
            Assert.DoesNotContain(t.Run.RunFiles(), f => f.StartsWith("checkpoints") || f.StartsWith("kohya") || f == RunFolderLora.DiffusersName);
            Assert.False(File.Exists(Path.Combine(run, RunFolder.LogName)));
            t.Train();
        }
        Assert.All(mine, f => Assert.True(File.Exists(f), f));
        Assert.Single(File.ReadAllLines(Path.Combine(run, RunFolder.LogName)));
        Assert.Equal(new[] { "README", "step-000001" }, Directory.GetFileSystemEntries(Path.Combine(run, "checkpoints")).Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal));
        Assert.Empty(_warnings);
    }

    [Fact]
    public void AFolderInUseIsRefusedAndAFailedFreshStartLeavesNothing()
    {
        using (Trainer(Config("busy", 2)))
            Assert.Contains("this process", Assert.Throws<InvalidInputException>(() => Trainer(Config("busy", 2), resume: true)).Message);

        var bad = Config("failed", 2);
        bad.Prompts.File = Touch("bad-prompts.txt", "a\0b");
        Assert.Contains("NUL", Assert.Throws<InvalidInputException>(() => Trainer(bad)).Message);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "failed")), "the folder the failed start created is gone");

        Touch("failed/notes.txt");
        Assert.Throws<InvalidInputException>(() => Trainer(bad));
        Assert.Equal(new[] { "notes.txt" }, Directory.GetFileSystemEntries(Path.Combine(_tmp, "failed")).Select(Path.GetFileName));

        Assert.Contains("no run to resume", Assert.Throws<InvalidInputException>(() => Trainer(Config("nothing", 2), resume: true)).Message);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "nothing")));
    }

    [Fact]
    public void ResumeAfterAKillIgnoresWhatTheKillLeftBehind()
    {
        var dir = Path.Combine(_tmp, "killed");
        foreach (var f in new[] { "lora_state.safetensors", "optimizer.safetensors", "config.json", "state.json" })
        {
            Touch($"killed/checkpoints/step-000002/{f}");
            Touch($"killed/checkpoints/step-000004.tmp/{f}");
            if (f != "optimizer.safetensors") Touch($"killed/checkpoints/step-000003/{f}"); // a delete cut short
        }
        Touch("killed/log.jsonl", "{\"time\":\"t\",\"step\":0}\n{\"time\":\"t\",\"step\":1}\n{\"time\":\"t\",\"step\":2}\n{\"time\":\"t\",\"st");
        var temp = Touch("killed/.adapter_model.safetensors.123.0123456789abcdef0123456789abcdef.tmp");
        var usersTemp = Touch("killed/.my-notes.txt.123.0123456789abcdef0123456789abcdef.tmp");
        var tbPath = Path.Combine(dir, RunFolder.TensorBoardFolder, "events.out.tfevents.1.host.1.1");
        string written;
        using (var tb = new TensorBoardLog(Path.GetDirectoryName(tbPath)!))
        {
            for (int s = 0; s < 4; s++) tb.Scalar("train/loss", s, s);
            written = tb.FilePath;
        }
        File.Move(written, tbPath);
        File.AppendAllText(tbPath, "\u0001\u0002\u0003"); // a record cut short

        using (var folder = RunFolder.Open(dir, RunStart.Resume, null, _warnings.Add))
        {
            Assert.False(File.Exists(temp));
            Assert.True(File.Exists(usersTemp), "a temporary-looking file the trainer does not write stays");
            Assert.False(Directory.Exists(Path.Combine(dir, "checkpoints", "step-000004.tmp")));
            var latest = folder.LatestCheckpoint();
            Assert.Equal(2, latest!.Step);
            folder.TruncateLogs(latest.Step);
        }
        Assert.Equal(new[] { 0, 1 }, JsonlLog.Read<StepOnly>(Path.Combine(dir, RunFolder.LogName)).Select(r => r.Step));
        var steps = TensorBoardLog.ReadEvents(tbPath).Where(e => e.Summary != null).Select(e => e.Step);
        Assert.Equal(new long[] { 0, 1 }, steps);

        // A fresh start sees the run; the user's file does not count.
        Assert.Contains("log.jsonl", Assert.Throws<InvalidInputException>(() => RunFolder.Open(dir, RunStart.Fresh, null, _warnings.Add)).Message);
        using (var folder = RunFolder.Open(dir, RunStart.Overwrite, null, _warnings.Add)) Assert.Empty(folder.RunFiles());
        Assert.Equal(new[] { Path.GetFileName(usersTemp) }, Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void TheCacheFolderIsTheRunsUnlessTheConfigNamesIt()
    {
        var dir = Path.Combine(_tmp, "cached");
        Touch("cached/cache/0.safetensors");
        Touch("cached/cache/manifest.json");
        Assert.Throws<InvalidInputException>(() => RunFolder.Open(dir, RunStart.Fresh, null, _warnings.Add));
        using (var shared = RunFolder.Open(dir, RunStart.Fresh, Path.Combine(dir, "cache") + "/", _warnings.Add)) Assert.Empty(shared.RunFiles());
        using (RunFolder.Open(dir, RunStart.Overwrite, null, _warnings.Add)) { }
        Assert.False(Directory.Exists(Path.Combine(dir, "cache")));
    }

    sealed record StepOnly(int Step);
}
