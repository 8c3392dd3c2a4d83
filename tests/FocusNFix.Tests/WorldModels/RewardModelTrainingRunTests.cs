using FocusNFix.ShapesWorld;
using FocusNFix.Tests.ShapesWorld;
using FocusNFix.WorldModels;
using Xunit;

namespace FocusNFix.Tests.WorldModels;

/// <summary><c>fnf world train-reward</c>'s library side, end to end on a world with short prompt lists.</summary>
public class RewardModelTrainingRunTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-reward-run-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void SamplesTheBaseTrainsMeasuresAndWritesTheFolderWithItsCard()
    {
        var world = TinyWorld.Write(Path.Combine(_dir, "world.json"), trainPrompts: 3, testPrompts: 2);
        var phases = new List<string>();
        var o = new RewardModelTrainingRun.Options
        {
            Defect = "glitch", BaseModel = Path.Combine(Golden.Root, "models", "shapesworld", "base"), OutDir = Path.Combine(_dir, "reward"),
            WorldPath = world, Steps = 2, BaseSampleSeeds = 1, LogDir = Path.Combine(_dir, "tb"), CommandLine = "fnf world train-reward --defect glitch",
        };
        var result = RewardModelTrainingRun.Run(o, (phase, _, _, _) => { if (!phases.Contains(phase)) phases.Add(phase); });
        Assert.Equal(new[] { "sampling 3 base-model training images", "training reward-glitch", "sampling 4 held-out base-model images" }, phases);
        Assert.All(RewardModelTrainingRun.Files(o.OutDir), f => Assert.True(File.Exists(f), f));
        using var model = RegionRewardModel.FromPretrained(o.OutDir);
        Assert.Equal(DefectKind.Glitch, model.Config.Defect);
        var card = File.ReadAllText(Path.Combine(o.OutDir, ModelCards.FileName));
        Assert.Equal(result.Card, card);
        Assert.Contains("- command: `fnf world train-reward --defect glitch`", card);
        Assert.Contains("from 3 base-model samples of the train prompts, seeds 5000;", card);
        Assert.Matches(@"\| held-out base-model samples \(test prompts x seeds 1000, 1001\) \| 4 \|", card);

        // Again into the same folder: refused before any sampling (no phase reported), the card kept.
        phases.Clear();
        Assert.Throws<InvalidInputException>(() => RewardModelTrainingRun.Run(o, (phase, _, _, _) => phases.Add(phase)));
        Assert.Empty(phases);
        Assert.Equal(card, File.ReadAllText(Path.Combine(o.OutDir, ModelCards.FileName)));
    }

    [Fact]
    public void TrainsARotRewardModelInAWorldWithRotAndRefusesOneWithoutRot()
    {
        var baseModel = Path.Combine(Golden.Root, "models", "shapesworld", "base");
        var world = TinyWorld.Write(Path.Combine(_dir, "world.json"), trainPrompts: 2, testPrompts: 2, rotRate: 0.3);
        var o = new RewardModelTrainingRun.Options
        {
            Defect = "rot", BaseModel = baseModel, OutDir = Path.Combine(_dir, "reward-rot"), WorldPath = world, Steps = 3, BaseSampleSeeds = 1,
            LogDir = Path.Combine(_dir, "tb"), CommandLine = "fnf world train-reward --defect rot",
        };
        var phases = new List<string>();
        var result = RewardModelTrainingRun.Run(o, (phase, _, _, _) => { if (!phases.Contains(phase)) phases.Add(phase); });
        Assert.Contains("training reward-rot", phases);
        using var model = RegionRewardModel.FromPretrained(o.OutDir);
        Assert.Equal(DefectKind.Rot, model.Config.Defect);
        var spec = WorldSpec.Load(world);
        Assert.Equal(Math.Round(spec.Rot!.ExpectedPixels(spec)), model.Config.RewardAreaPixels);
        Assert.InRange(model.Config.RewardAreaPixels, 30, 60);
        Assert.Contains("region reward model: rot", result.Card);
        // The held-out rendered scenes it is measured on carry rot.
        var (images, masks) = RewardModelTraining.HeldOutScenes(new ShapesWorldBenchmark(spec), 100, DefectKind.Rot);
        using (images) using (masks) Assert.True(masks.sum().item<float>() > 100 * 0.2 * 20);

        // A world with rot gated off (rate 0): nothing to learn from, refused before any sampling.
        phases.Clear();
        var gated = TinyWorld.Write(Path.Combine(_dir, "no-rot.json"), trainPrompts: 2, testPrompts: 2, rotRate: 0);
        var ex = Assert.Throws<InvalidInputException>(() => RewardModelTrainingRun.Run(o with { WorldPath = gated, OutDir = Path.Combine(_dir, "r2") },
            (phase, _, _, _) => phases.Add(phase)));
        Assert.Contains("rot rate is 0", ex.Message);
        Assert.Empty(phases);
    }
}
