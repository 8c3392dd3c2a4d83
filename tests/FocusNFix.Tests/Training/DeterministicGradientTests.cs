using FocusNFix.Pipelines;
using FocusNFix.Training;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

/// <summary>
/// Regression tests for issue 10: identical training steps from the same state must give bit-identical, finite
/// gradients, whatever the garbage collector does in between.
/// </summary>
public class DeterministicGradientTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-det-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    TrainingConfig Config(int threads)
    {
        var c = new TrainingConfig
        {
            Model = Path.Combine(Golden.Root, "models", "shapesworld", "base"),
            OutputDir = Path.Combine(_tmp, $"t{threads}"),
            Threads = threads,
            Prompts = new PromptConfig { Limit = 4, SeedsPerPrompt = 1 },
            Sampling = new SamplingConfig { Steps = 6 },
            Train = new TrainLoopConfig { Steps = 1, BatchSize = 2, CheckpointEvery = 0, SampleEvery = 0 },
        };
        c.Rewards[0].Path = Path.Combine(Golden.Root, "models", "shapesworld", "reward-hazard");
        c.Heatmap.Path = c.Rewards[0].Path;
        return c;
    }

    static float[][] Snapshot(FocusNFixTrainer t) =>
        t.Lora.TrainableParameters().Select(p => p.grad is null ? Array.Empty<float>() : p.grad.data<float>().ToArray()).ToArray();

    // Skipped, not deleted: it still fails at random on a loaded machine (all LoRA gradients NaN in some repeat), most
    // often with 2 threads. Issue 10 stays open on that; remove Skip to check a fix.
    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(1, true)]
        public void RepeatedStepsGiveIdenticalGradients(int threads, bool forceGc)
    {
        int oldThreads = get_num_threads();
        try
        {
            using var trainer = new FocusNFixTrainer(Config(threads));
            // Move the LoRA off its zero initialisation so every gradient path (A and B) carries signal.
            using var gen = new Generator(3);
            using (no_grad())
                foreach (var p in trainer.Lora.TrainableParameters()) p.add_(randn(p.shape, generator: gen) * 0.01);
            float[][]? first = null;
            for (int rep = 0; rep < 12; rep++)
            {
                // The stress variant collects on the training thread in the middle of every backward and lets the
                // finalizers run concurrently with the rest of it, which is what a natural GC does.
                GradientCheckpoint.OnRecompute = forceGc ? () => GC.Collect() : null;
                for (int step = 0; step < 2; step++)
                {
                    // Deliberately without a dispose scope: the trainer must not depend on its caller's.
                    trainer.ComputeGradients(step);
                    var g = Snapshot(trainer);
                    Assert.All(g, a => Assert.All(a, v => Assert.True(float.IsFinite(v), $"non-finite gradient at repeat {rep}, step {step}")));
                    if (step == 0)
                    {
                        if (first is null) first = g;
                        else for (int i = 0; i < g.Length; i++) Assert.True(first[i].AsSpan().SequenceEqual(g[i]), $"gradient {i} differs at repeat {rep}");
                    }
                }
            }
        }
        finally
        {
            GradientCheckpoint.OnRecompute = null;
            set_num_threads(oldThreads);
        }
    }

    [Fact]
    public void TrainStepLeavesNoTensorToTheFinalizer()
    {
        using var trainer = new FocusNFixTrainer(Config(1));
        trainer.TrainStep(0);
        var stats = TorchSharp.DisposeScopeManager.Statistics;
        long before = stats.CreatedOutsideScopeCount;
        trainer.TrainStep(1);
        Assert.Equal(before, stats.CreatedOutsideScopeCount);
    }

    [Fact]
    public void BackwardRunsWithCollectionsPaused()
    {
        using var trainer = new FocusNFixTrainer(Config(1));
        var seen = new List<bool>();
        GradientCheckpoint.OnRecompute = () => seen.Add(TorchGcPause.Active);
        try { trainer.TrainStep(0); }
        finally { GradientCheckpoint.OnRecompute = null; }
        Assert.NotEmpty(seen);
        Assert.All(seen, Assert.True);
        Assert.False(TorchGcPause.Active);
    }
}
