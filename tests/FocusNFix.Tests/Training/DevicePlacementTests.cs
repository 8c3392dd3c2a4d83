using FocusNFix.Rewards;
using FocusNFix.Tests.Rewards;
using FocusNFix.Training;
using FocusNFix.ShapesWorld;
using FocusNFix.WorldModels;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static FocusNFix.Tests.Rewards.TinyRewardModels;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

/// <summary>
/// Everything a training step touches lives on the pipeline's device: the models, the LoRA and its gradients, the
/// optimiser state, the cached originals and masks, the rewards and heatmap sources the config names (built by the
/// factory) and every tensor that goes in and out of them. Devices are compared with the pipeline's Device object,
/// so on a machine with CUDA the same test checks cuda (it runs for every device torch reports available).
/// </summary>
public class DevicePlacementTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-device-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    public static IEnumerable<object[]> AvailableDevices()
    {
        yield return new object[] { "cpu" };
        if (cuda.is_available()) yield return new object[] { "cuda" };
    }

    /// <summary>A region reward model that records the devices of what it is given and what it returns.</summary>
    sealed class Recorder(RegionRewardModel model) : IReward, IHeatmapSource
    {
        public RegionRewardModel Model { get; } = model;
        public List<(string What, Device Device)> Seen { get; } = new();
        public string Name => Model.Name;

        public Tensor Score(Tensor images, IReadOnlyList<string> prompts)
        {
            Seen.Add(("reward input", images.device));
            var s = Model.Score(images, prompts);
            Seen.Add(("reward output", s.device));
            return s;
        }

        public Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys)
        {
            Seen.Add(("heatmap input", images.device));
            var h = Model.Compute(images, keys);
            Seen.Add(("heatmap output", h.device));
            return h;
        }

        public List<Device> MovedTo { get; } = new();

        public void To(Device device)
        {
            MovedTo.Add(device);
            Model.To(device);
        }

        public void Dispose() => Model.Dispose();
    }

    TrainingConfig Config(string device, string reward)
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\na blue square in the center on a gray background\n");
        return new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"), OutputDir = Path.Combine(_tmp, "run-" + device.Replace(':', '-')), Threads = 1, Device = device,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 1, Limit = null },
            Sampling = new SamplingConfig { Steps = 3, GuidanceScale = 2.0 },
            Draft = new DraftConfig { K = 2 },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Rewards = new() { new RewardSpec { Type = "region-reward-model", Path = reward } },
            Heatmap = new HeatmapSpec { Type = "reward-model", Path = reward },
            Optimizer = new OptimizerConfig { LearningRate = 1e-3, WarmupSteps = 1 },
            Train = new TrainLoopConfig { Steps = 2, BatchSize = 2, CheckpointEvery = 0, SampleEvery = 0 },
        };
    }

    static void AssertOn(Device expected, Device actual, string what) =>
        Assert.True(Placement.Same(expected, actual), $"{what} is on {actual}, not on the pipeline's device {expected}");

    [Theory]
    [MemberData(nameof(AvailableDevices))]
    public void EveryParameterAndTensorOfATrainingStepLivesOnThePipelinesDevice(string device)
    {
        var rewardDir = Path.Combine(_tmp, "reward");
        manual_seed(3);
        using (var m = new RegionRewardModel(new RegionRewardConfig(DefectKind.Hazard, new[] { 4, 4 }))) m.SavePretrained(rewardDir);
        // The config's reward and heatmap come from the factory, through the loader hook: record what it loads (on the CPU).
        var loaded = new List<Recorder>();
        var registered = RewardFactory.RegionRewardLoader;
        RewardFactory.RegionRewardLoader = path =>
        {
            var r = new Recorder(RegionRewardModel.FromPretrained(path));
            loaded.Add(r);
            return r;
        };
        try
        {
            using var trainer = new FocusNFixTrainer(Config(device, rewardDir));
            var expected = trainer.Pipeline.Device;
            Assert.Equal(2, loaded.Count); // the reward, and the heatmap's own copy of the model
            // Loaded on the CPU, each is moved explicitly (which on a CPU-only machine is what makes this test bite).
            foreach (var r in loaded) Assert.Contains(r.MovedTo, d => Placement.Same(d, expected));
            trainer.TrainStep(0);
            var g = trainer.ComputeGradients(1, keepImages: true);
            using var images = g.Images!;

            var models = new (string Name, nn.Module? Module)[]
            {
                ("unet", trainer.Pipeline.Unet), ("text encoder", trainer.Pipeline.TextEncoder), ("vae", trainer.Pipeline.Vae),
                ("lora", trainer.Lora), ("reward model", loaded[0].Model), ("heatmap model", loaded[1].Model),
            };
            foreach (var (name, module) in models.Where(m => m.Module is not null))
            {
                foreach (var (p, t) in module!.named_parameters()) AssertOn(expected, t.device, $"{name} parameter {p}");
                foreach (var (b, t) in module.named_buffers()) AssertOn(expected, t.device, $"{name} buffer {b}");
            }
            foreach (var p in trainer.Lora.TrainableParameters())
            {
                Assert.NotNull(p.grad);
                AssertOn(expected, p.grad!.device, "a LoRA gradient");
            }
            foreach (var (k, t) in trainer.Optimizer.StateDict().Where(kv => kv.Key != "step")) AssertOn(expected, t.device, $"optimiser state {k}");
            for (int i = 0; i < trainer.Cache.Pool.Count; i++)
            {
                var e = trainer.Cache.Get(i);
                foreach (var (what, t) in new[] { ("noise", e.Noise), ("latents", e.Latents), ("image", e.Image), ("heatmap", e.Heatmap), ("mask", e.Mask) })
                    AssertOn(expected, t.device, $"cached original {i}'s {what}");
            }
            AssertOn(expected, images.device, "the step's images");
            var seen = loaded.SelectMany(r => r.Seen).ToList();
            Assert.Contains(seen, s => s.What == "reward input");
            Assert.Contains(seen, s => s.What == "heatmap output");
            foreach (var (what, d) in seen) AssertOn(expected, d, what);
        }
        finally { RewardFactory.RegionRewardLoader = registered; }
    }

    [Fact]
    public void RewardsAndHeatmapSourcesMoveEveryWeightToTheDeviceTheyAreGiven()
    {
        // The meta device has no storage: moving there proves each To(Device) reaches every weight without a GPU. (A
        // training step cannot run on meta: the loop reads values back, e.g. the loss for the log.)
        var meta = new Device(DeviceType.META, -1);
        var (redClip, redMlp) = WriteRedPenaltyAesthetic(_tmp);
        var clipFolder = WriteClipModelFolder(_tmp);
        var regionDir = Path.Combine(_tmp, "region");
        using (var m = new RegionRewardModel(new RegionRewardConfig(DefectKind.Hazard, new[] { 4, 4 }))) m.SavePretrained(regionDir);
        var region = RegionRewardModel.FromPretrained(regionDir);
        var rewards = new (string Name, IReward Reward)[]
        {
            ("region reward", region),
            ("safety", SafetyReward.FromPretrained(SafetyFolder)),
            ("aesthetic", AestheticReward.FromPretrained(redClip, redMlp)),
            ("pick score", PickScoreReward.FromPretrained(clipFolder, Tokenizer())),
            ("clip score", ClipScoreReward.FromPretrained(clipFolder, Tokenizer())),
        };
        var weighted = new WeightedReward(rewards.Select(r => (r.Reward, 1.0)), ownsParts: true);
        var sources = new IHeatmapSource[]
        {
            new GradientSaliency(weighted), new GradCamSaliency((IVisionTokenReward)rewards[1].Reward), region,
        };
        try
        {
            foreach (var source in sources) source.To(meta);
            weighted.To(meta);
            foreach (var (name, reward) in rewards)
                foreach (var (p, t) in ((nn.Module)reward).named_parameters())
                {
                    Assert.True(t.device.type == DeviceType.META, $"{name} parameter {p} stayed on {t.device}");
                    Assert.False(t.requires_grad, $"{name} parameter {p} became trainable when moved");
                }
        }
        finally { weighted.Dispose(); }
    }
}
