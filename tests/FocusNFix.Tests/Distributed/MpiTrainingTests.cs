using System.Diagnostics;
using System.Text.Json;
using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Rewards;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;
using FocusNFix.WorldModels;
using Xunit;
using Xunit.Abstractions;

namespace FocusNFix.Tests.Distributed;

/// <summary>
/// Issue 14: <c>mpirun -np 2 fnf train</c> on a global batch of 4 ends where one process with batch 4 ends (same
/// config); a member killed with kill -9 stops the whole job, and <c>--resume</c> ends where the uninterrupted job ends.
/// The configs set train.gradient_shards = 2: every process, one or two, computes the batch as two fixed shards of 2
/// images and adds their gradients in shard order, so the final LoRA is the same bit for bit (measured: difference
/// 0). Without it one process backpropagates the 4 images at once and two processes 2 each: the gradients then agree
/// only to float rounding, and AdamW, which divides each gradient value by its own running magnitude, turns rounding
/// noise in near-zero entries into lr-sized moves (3 steps at lr 5e-3: 2.4e-4 apart). Held to 1e-5 here, as the
/// issue asks.
/// </summary>
public class MpiTrainingTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-mpi-").FullName;
    readonly ITestOutputHelper _out;
    public MpiTrainingTests(ITestOutputHelper output) => _out = output;
    public void Dispose() { if (Environment.GetEnvironmentVariable("FNF_KEEP_TMP") == null) Directory.Delete(_tmp, true); }

    static readonly TimeSpan Limit = TimeSpan.FromMinutes(4);

    const double LearningRate = 5e-3;

    string WriteConfig(string name, int steps, string cache = "memory", int? gradientShards = 2)
    {
        var reward = Path.Combine(_tmp, "reward");
        if (!Directory.Exists(reward))
        {
            TorchSharp.torch.manual_seed(3);
            using var m = new RegionRewardModel(new RegionRewardConfig(DefectKind.Hazard, new[] { 4, 4 }));
            m.SavePretrained(reward);
        }
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\na blue square in the bottom right on a white background\n");
        var cfg = new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"), OutputDir = Path.Combine(_tmp, name), Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 3, Limit = null },
            Sampling = new SamplingConfig { Steps = 3, GuidanceScale = 2 },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Optimizer = new OptimizerConfig { LearningRate = LearningRate, WarmupSteps = 1 },
            Rewards = new() { new RewardSpec { Type = "region-reward-model", Path = reward } },
            Heatmap = new HeatmapSpec { Type = "reward-model", Path = reward },
            Train = new TrainLoopConfig { Steps = steps, BatchSize = 4, CheckpointEvery = 1, SampleEvery = 1, Cache = cache,
                GradientShards = gradientShards },
        };
        var path = Path.Combine(_tmp, name + ".json");
        File.WriteAllText(path, cfg.ToJson());
        return path;
    }

    (int Code, string Output) Single(params string[] args)
    {
        var clock = Stopwatch.StartNew();
        var (code, stdout, stderr) = Cli.CliProcess.RunWith(null, args);
        _out.WriteLine($"fnf {string.Join(" ", args.Skip(2))}: exit {code} in {clock.Elapsed.TotalSeconds:F1} s");
        return (code, stdout + stderr);
    }

    (int Code, string Output) Mpi(int n, IReadOnlyDictionary<int, string>? rankEnv, params string[] args)
    {
        var clock = Stopwatch.StartNew();
        var (code, output) = Mpirun.Run(n, rankEnv, Limit, args);
        _out.WriteLine($"mpirun -np {n} fnf {string.Join(" ", args.Skip(2))}: exit {code} in {clock.Elapsed.TotalSeconds:F1} s");
        _out.WriteLine(string.Join("\n", output.Split('\n').Where(l => l.StartsWith("error") || l.StartsWith("rank") || l.Contains("mpirun") || l.Contains("signal"))));
        return (code, output);
    }

    static double MaxDiff(string a, string b)
    {
        var x = Safetensors.Load(a);
        var y = Safetensors.Load(b);
        Assert.Equal(x.Keys.OrderBy(k => k), y.Keys.OrderBy(k => k));
        return x.Keys.Max(k => (x[k] - y[k]).abs().max().item<float>());
    }

    static List<JsonElement> Log(string run) =>
        File.ReadAllLines(Path.Combine(run, RunFolder.LogName)).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    /// <summary>The final LoRA files of <paramref name="run"/> within <paramref name="tolerance"/> of <paramref name="reference"/>'s, and its log's figures within 1e-5.</summary>
    void AssertSameRun(string reference, string run, int steps, double tolerance)
    {
        foreach (var file in new[] { RunFolderLora.DiffusersName, PeftAdapterConfig.WeightsName, RunFolderLora.KohyaName })
        {
            double diff = MaxDiff(Path.Combine(reference, file), Path.Combine(run, file));
            _out.WriteLine($"{Path.GetFileName(run)} {file}: max abs difference {diff:E2}");
            Assert.True(diff <= tolerance, $"{file}: max abs difference {diff}");
        }
        // lora_B starts at zero: non-zero values are what training did.
        var trained = Safetensors.Load(Path.Combine(run, RunFolderLora.DiffusersName));
        Assert.True(trained.Where(kv => kv.Key.Contains("lora_B") || kv.Key.Contains("lora.up")).Any(kv => kv.Value.abs().max().item<float>() > 0), "the LoRA did not train");
        // One log row per step (rank 0 alone writes), with the single process's figures.
        var (a, b) = (Log(reference), Log(run));
        Assert.Equal(Enumerable.Range(0, steps), b.Select(e => e.GetProperty("step").GetInt32()));
        foreach (var key in new[] { "loss", "reward", "constraint", "grad_norm" })
            for (int i = 0; i < steps; i++)
                Assert.True(Math.Abs(a[i].GetProperty(key).GetDouble() - b[i].GetProperty(key).GetDouble()) <= 1e-5,
                    $"step {i} {key}: {a[i].GetProperty(key)} vs {b[i].GetProperty(key)}");
    }

    [MpiFact]
    [Trait("Category", "Slow")]
    public void TwoProcessesOnAGlobalBatchOfFourInTwoShardsEndWhereOneProcessEnds()
    {
        const int steps = 2;
        var (code, output) = Single("train", "--config", WriteConfig("single", steps));
        Assert.True(code == 0, output);
        (code, output) = Mpi(2, null, "train", "--config", WriteConfig("two", steps));
        Assert.True(code == 0, output);
        Assert.Contains("rank 1 of 2:", output);
        string single = Path.Combine(_tmp, "single"), two = Path.Combine(_tmp, "two");
        AssertSameRun(single, two, steps, 1e-5);
        // The disk cache is written in shares by both processes and read back by both.
        (code, output) = Mpi(2, null, "train", "--config", WriteConfig("two-disk", steps, cache: "disk"));
        Assert.True(code == 0, output);
        Assert.Equal(6, Directory.GetFiles(Path.Combine(_tmp, "two-disk", "cache"), "*.safetensors").Length);
        AssertSameRun(two, Path.Combine(_tmp, "two-disk"), steps, 1e-5);

        // An error on rank 0 alone (the folder already holds a run) ends the whole job with its line, not a hang.
        (code, output) = Mpi(2, null, "train", "--config", WriteConfig("two", steps));
        Assert.NotEqual(0, code);
        Assert.Contains("error: ", output);
        Assert.Contains("--resume", output);
        // A batch the processes cannot share equally is refused by name.
        (code, output) = Mpi(3, null, "train", "--config", WriteConfig("three", steps));
        Assert.NotEqual(0, code);
        Assert.Contains("train.batch_size = 4: expected a multiple of the 3 MPI processes", output);
    }

    [MpiFact]
    [Trait("Category", "Slow")]
    public void AProcessKilledWithKill9StopsTheJobAndResumeEndsWhereTheUninterruptedRunEnds()
    {
        const int steps = 3;
        var (code, output) = Mpi(2, null, "train", "--config", WriteConfig("uninterrupted", steps));
        Assert.True(code == 0, output);
        var config = WriteConfig("killed", steps);
        var run = Path.Combine(_tmp, "killed");
        // Rank 1 kills itself (SIGKILL) right after step 1; rank 0 is then waiting for it in step 2's all-reduce.
        (code, output) = Mpi(2, new Dictionary<int, string> { [1] = $"{KillPoint.Variable}=rank-step:1:1" }, "train", "--config", config);
        Assert.NotEqual(0, code);
        Assert.Contains("signal 9", output);
        Assert.Contains("error: rank 0 of 2: stopped by the MPI launcher", output);
        Assert.False(File.Exists(Path.Combine(run, RunFolderLora.DiffusersName)));
        Assert.True(Directory.Exists(Path.Combine(run, "checkpoints", "step-000001")), string.Join(", ", Directory.GetFileSystemEntries(run)));

        (code, output) = Mpi(2, null, "train", "--config", config, "--resume");
        Assert.True(code == 0, output);
        AssertSameRun(Path.Combine(_tmp, "uninterrupted"), run, steps, 1e-5);
        Assert.False(File.Exists(Path.Combine(run, RunLock.FileName)));
    }
}
