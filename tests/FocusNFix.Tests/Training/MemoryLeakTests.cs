using System.Diagnostics;
using FocusNFix.Evaluation;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using FocusNFix.Training;
using FocusNFix.ShapesWorld;
using FocusNFix.WorldModels;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

/// <summary>
/// Long loops on the tiny pixel pipeline must keep memory flat: after a warm-up, the number of live tensors this thread
/// created (TorchSharp's own count, which only a Dispose lowers: a tensor left to the garbage collector counts as live)
/// must not grow, and neither may the resident set size beyond the allocator's noise.
/// </summary>
public class MemoryLeakTests : IDisposable
{
    const int Loops = 200, WarmUp = 20;
    // glibc keeps freed blocks in its arenas and fragments a little: a few MB of noise, far below a leak of any
    // tensor per step (the 200-step loop without dispose scopes grew by gigabytes, torchsharp-notes.md).
    const double RssMarginMb = 24;

    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-leak-").FullName;
    readonly ITestOutputHelper _out;
    public MemoryLeakTests(ITestOutputHelper output) => _out = output;
    public void Dispose() => Directory.Delete(_tmp, true);

    static long LiveTensors => DisposeScopeManager.Statistics.TensorStatistics.ThreadTotalLiveCount;

    static double RssMb()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using var p = Process.GetCurrentProcess();
        p.Refresh();
        return p.WorkingSet64 / (1024.0 * 1024.0);
    }

    string RewardFolder()
    {
        var dir = Path.Combine(_tmp, "reward");
        manual_seed(3);
        using var m = new RegionRewardModel(new RegionRewardConfig(DefectKind.Hazard, new[] { 4, 4 }));
        m.SavePretrained(dir);
        return dir;
    }

    TrainingConfig Config(string reward)
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\na blue square in the center on a gray background\n");
        return new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"), OutputDir = Path.Combine(_tmp, "run"), Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 1, Limit = null },
            // One sampling step without guidance keeps each step cheap; the step still runs the whole path (checkpointed
            // UNet call, decode, reward, constraint, backward, clipping, AdamW, log line).
            Sampling = new SamplingConfig { Steps = 1, GuidanceScale = 1.0 },
            Draft = new DraftConfig { K = 1, Checkpointing = true },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Rewards = new() { new RewardSpec { Type = "region-reward-model", Path = reward } },
            Heatmap = new HeatmapSpec { Type = "reward-model", Path = reward },
            Optimizer = new OptimizerConfig { LearningRate = 1e-3, WarmupSteps = 1 },
            Train = new TrainLoopConfig { Steps = Loops, BatchSize = 1, CheckpointEvery = 0, SampleEvery = 0 },
        };
    }

    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly TimeSpan _cpu0 = Process.GetCurrentProcess().TotalProcessorTime;

    void AssertFlat(string what, (long Live, double Rss) warm, (long Live, double Rss) end)
    {
        _out.WriteLine($"{what}: live tensors {warm.Live} -> {end.Live}, RSS {warm.Rss:F1} -> {end.Rss:F1} MB; " +
            $"{_clock.Elapsed.TotalSeconds:F1} s wall, {(Process.GetCurrentProcess().TotalProcessorTime - _cpu0).TotalSeconds:F1} s CPU");
        Assert.True(end.Live <= warm.Live, $"{what}: {end.Live - warm.Live} more live tensors after {Loops - WarmUp} more iterations ({warm.Live} -> {end.Live})");
        Assert.True(end.Rss - warm.Rss <= RssMarginMb, $"{what}: RSS grew {end.Rss - warm.Rss:F1} MB after {Loops - WarmUp} more iterations ({warm.Rss:F1} -> {end.Rss:F1} MB)");
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void TwoHundredTrainingStepsWithCheckpointsKeepMemoryFlat()
    {
        using var trainer = new FocusNFixTrainer(Config(RewardFolder()));
        (long, double) warm = default;
        for (int step = 0; step < Loops; step++)
        {
            var log = trainer.TrainStep(step);
            Assert.False(log.Skipped, $"step {step} was skipped");
            if ((step + 1) % 20 == 0) trainer.SaveCheckpoint(step + 1);
            if (step + 1 == WarmUp) warm = (LiveTensors, RssMb());
        }
        AssertFlat("training", warm, (LiveTensors, RssMb()));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void TwoHundredSamplingAndEvaluationCallsKeepMemoryFlat()
    {
        // A LoRA to evaluate: a short run's.
        var reward = RewardFolder();
        var cfg = Config(reward);
        cfg.Train.Steps = 1;
        using (var trainer = new FocusNFixTrainer(cfg)) trainer.Train();
        var lora = Path.Combine(cfg.OutputDir, FocusNFixTrainer.FinalPeftName);

        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        using var target = RewardFactory.CreateReward(new RewardSpec { Type = "region-reward-model", Path = reward }, pipe.Device) as RegionRewardModel;
        var setup = new EvalSetup
        {
            Prompts = new[] { "a red circle in the top left on a white background" }, Seeds = new long[] { 1000 },
            Loras = new[] { ("fixed", lora) }, Steps = 1, GuidanceScale = 1.0,
            Target = target!, Heatmap = target!, Mask = cfg.Mask, PictureRows = 1,
        };
        (long, double) warm = default;
        var schedulers = new[] { "ddim", "euler", "dpmpp-2m", "pndm" };
        for (int i = 0; i < Loops; i++)
        {
            if (i % 2 == 0)
            {
                // Sampling with a scheduler that changes every call (SetTimesteps replaces its tensors each time) ...
                pipe.UseScheduler(schedulers[i / 2 % schedulers.Length]);
                using var r = pipe.Sample(new[] { "a blue square" }, new SampleOptions { Steps = 2, GuidanceScale = 2.0, Seeds = new long[] { i } });
            }
            else
            {
                // ... and a whole evaluation: base and LoRA images, heatmaps, masks, metrics, picture rows.
                pipe.UseScheduler("ddim");
                Evaluator.Run(pipe, setup, Path.Combine(_tmp, "eval"));
            }
            if (i + 1 == WarmUp) warm = (LiveTensors, RssMb());
        }
        AssertFlat("sampling and evaluation", warm, (LiveTensors, RssMb()));
    }
}
