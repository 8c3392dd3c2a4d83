using FocusNFix.Training;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

/// <summary>
/// The invariant behind the constraint: with a zero-initialised LoRA the training path (the gradient window, the
/// checkpointed UNet calls, the per-image noise streams) makes exactly the cached original I0, so the constraint is 0
/// at step 0. Checked through the trainer itself for every scheduler the config accepts and every loop setting, with a
/// training batch (2) different from the cache's batch (the whole pool of 3).
/// </summary>
public class ZeroLoraInvariantTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-invariant-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    public static IEnumerable<object[]> Combinations()
    {
        var schedulers = new (string Name, double Eta)[] { ("ddim", 0), ("ddim", 1), ("ddpm", 0), ("euler", 0), ("euler-a", 0), ("dpmpp-2m", 0), ("pndm", 0) };
        foreach (var (name, eta) in schedulers)
            foreach (var k in new[] { 1, 2 })
                foreach (var checkpointing in new[] { true, false })
                    foreach (var guidance in new[] { 1.0, 3.0 })
                        yield return new object[] { name, eta, "draft-k", k, checkpointing, guidance };
        foreach (var (name, eta) in schedulers.Where(s => s.Name != "pndm"))
            yield return new object[] { name, eta, "refl", 2, true, 3.0 };
        foreach (var (name, eta) in schedulers)
            yield return new object[] { name, eta, "full", 1, true, 3.0 };
    }

    TrainingConfig Config(string scheduler, double eta, string mode, int k, bool checkpointing, double guidance)
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\na blue square in the center on a gray background\na green triangle at the bottom\n");
        return new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"),
            OutputDir = Path.Combine(_tmp, $"{scheduler}-{eta}-{mode}-{k}-{checkpointing}-{guidance}"),
            Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 1, Limit = null },
            Sampling = new SamplingConfig { Steps = 4, GuidanceScale = guidance, Eta = eta, Scheduler = scheduler },
            Draft = new DraftConfig { Mode = mode, K = k, Checkpointing = checkpointing },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Train = new TrainLoopConfig { Steps = 1, BatchSize = 2, SampleEvery = 0 },
        };
    }

    static readonly FocusNFix.Rewards.IHeatmapSource TopHalf = FocusNFix.Tests.Rewards.FunctionHeatmap.TopHalf();

    [Theory]
    [MemberData(nameof(Combinations))]
    public void ZeroLoraReproducesTheCachedOriginal(string scheduler, double eta, string mode, int k, bool checkpointing, double guidance)
    {
        using var trainer = new FocusNFixTrainer(Config(scheduler, eta, mode, k, checkpointing, guidance), reward: new RedReward(), heatmapOverride: TopHalf);
        var g = trainer.ComputeGradients(0, keepImages: true);
        using var images = g.Images!;
        using var scope = NewDisposeScope();
        var idx = trainer.BatchIndices(0, 0);
        var (_, _, i0, _, _) = trainer.Cache.Batch(idx, trainer.Pipeline.Device);
        double maxDiff = (images - i0).abs().max().item<float>();
        Assert.True(maxDiff <= 1e-6, $"training image differs from I0 by {maxDiff:E3}");
        Assert.Equal(0.0, g.Constraint);
        Assert.Equal(0.0, g.ChangeOutside);
        // Backward ran (the checkpoint recomputes included) and reached the LoRA: B is zero, so A's gradient is zero
        // but B's is not.
        var grads = trainer.Lora.TrainableParameters().Select(p => p.grad).ToList();
        Assert.All(grads, gr => Assert.NotNull(gr));
        Assert.Contains(grads, gr => gr!.abs().sum().item<float>() > 0);
        Assert.All(grads, gr => Assert.True(gr!.isfinite().all().item<bool>()));
    }

    [Fact]
    public void ReflWithASchedulerThatPredictsNoX0IsRefused()
    {
        var e = Assert.Throws<FocusNFix.InvalidInputException>(() =>
            new FocusNFixTrainer(Config("pndm", 0, "refl", 2, true, 3.0), reward: new RedReward(), heatmapOverride: TopHalf));
        Assert.Contains("refl", e.Message);
        Assert.Contains("PNDMScheduler", e.Message);
    }
}
