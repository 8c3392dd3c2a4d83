using FocusNFix.IO;
using FocusNFix.Pipelines;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;
using static TorchSharp.torch;

namespace FocusNFix.WorldModels;

/// <summary>
/// <c>fnf world train-reward</c>: trains a region reward model on rendered scenes and oracle-labelled samples of the
/// base model, measures it on held-out samples and rendered scenes, and writes the model folder with its card. An
/// occupied output is refused before any sampling or training.
/// </summary>
public static class RewardModelTrainingRun
{
    public sealed record Options
    {
        /// <summary>hazard, glitch or rot.</summary>
        public required string Defect { get; init; }
        /// <summary>Base pipeline whose samples, labelled by the oracle, join the rendered training data.</summary>
        public string BaseModel { get; init; } = Path.Combine(WorldFolder.Bundled, "base");
        /// <summary>Model folder to write; null: <c>runs/world/reward-DEFECT</c>.</summary>
        public string? OutDir { get; init; }
        /// <summary>world.json; null: <see cref="WorldFolder.LoadWorld"/>'s default.</summary>
        public string? WorldPath { get; init; }
        public int Steps { get; init; } = 800;
        /// <summary>Seeds per train prompt for the base-model training samples (5000, 5001, ...).</summary>
        public int BaseSampleSeeds { get; init; } = 2;
        public long Seed { get; init; }
        /// <summary>TensorBoard folder; null: <c>runs/world-reward-DEFECT</c>.</summary>
        public string? LogDir { get; init; }
        public bool Overwrite { get; init; }
        public string CommandLine { get; init; } = "fnf world train-reward";

        public string ResolvedOutDir => OutDir ?? Path.Combine(WorldFolder.DefaultOut, $"reward-{Defect}");
    }

    /// <summary>The files a reward model folder holds: weights, config and card.</summary>
    public static string[] Files(string dir) => new[]
    {
        Path.Combine(dir, RegionRewardModel.WeightsBase + ".safetensors"), Path.Combine(dir, RegionRewardModel.ConfigFile), Path.Combine(dir, ModelCards.FileName),
    };

    public sealed record Result(string ModelDir, string Card);

    /// <param name="progress">(phase, done, total, status).</param>
    public static Result Run(Options o, Action<string, int, int, string?>? progress = null)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var kind = RegionRewardConfig.ParseDefect(o.Defect, "--defect");
        if (o.Steps < 1) throw new InvalidInputException($"--steps {o.Steps}: expected at least 1");
        if (o.BaseSampleSeeds < 0) throw new InvalidInputException($"--base-samples-seeds {o.BaseSampleSeeds}: expected 0 or more");
        var outDir = o.ResolvedOutDir;
        OutputPaths.RefuseExisting(Files(outDir), o.Overwrite);
        var w = WorldFolder.LoadWorld(o.WorldPath);
        if (!w.Spec.DefectKinds.Contains(kind))
            throw new InvalidInputException($"--defect {o.Defect}: the world ({o.WorldPath ?? "default"}) defines no {o.Defect} defect; write a current world with fnf world spec and pass --world");
        if (kind == DefectKind.Rot && w.Spec.Rot!.Rate <= 0)
            throw new InvalidInputException($"--defect rot: the world's rot rate is 0 (defects.rot.rate), so its scenes carry no rot to learn from; pass --world with a world whose rot rate is above 0");
        using var pipe = TextToImagePipeline.Load(o.BaseModel);
        Action<int, int> Report(string phase) => (d, t) => progress?.Invoke(phase, d, t, null);

        var trainPrompts = PromptSplits.Prompts(w.Spec, Split.Train);
        var trainSeeds = Enumerable.Range(0, o.BaseSampleSeeds).Select(i => 5000L + i).ToList();
        using var extra = trainSeeds.Count == 0 ? null
            : WorldEvaluation.SampleImages(pipe, w, trainPrompts, trainSeeds, Report($"sampling {trainPrompts.Count * trainSeeds.Count} base-model training images"));
        using var extraMasks = extra is null ? null : WorldAugmentation.OracleMasks(w.Spec, kind, extra);
        using var log = new TensorBoardLog(o.LogDir ?? $"runs/world-reward-{o.Defect}");
        var options = new RewardModelTraining.Options(o.Defect, Steps: o.Steps, Seed: o.Seed);
        var trainPhase = $"training reward-{o.Defect}";
        using var model = RewardModelTraining.Train(w, options, extra, extraMasks, (s, t, loss) => progress?.Invoke(trainPhase, s, t, $"loss {loss:F4}"), log);

        var testPrompts = PromptSplits.Prompts(w.Spec, Split.Test);
        var testSeeds = new List<long> { 1000, 1001 };
        using var held = WorldEvaluation.SampleImages(pipe, w, testPrompts, testSeeds, Report($"sampling {testPrompts.Count * testSeeds.Count} held-out base-model images"));
        using var heldMasks = WorldAugmentation.OracleMasks(w.Spec, kind, held);
        using var present = WorldAugmentation.OraclePresent(w.Spec, kind, held);
        var onSamples = RewardModelTraining.Evaluate(model, held, heldMasks, present);
        var onRendered = RewardModelTraining.EvaluateRendered(model, w, 1000);
        model.SavePretrained(outDir);
        var card = ModelCards.RegionRewardModel(o.CommandLine, o.Defect, model.ParameterCount, options, extra?.shape[0] ?? 0, trainSeeds,
            pipe.Folder.ResolveSampling(null, null), clock.Elapsed,
            new ModelCards.RewardQuality(onSamples.Auc, onSamples.MeanIoU, onSamples.Positives, onSamples.Count),
            new ModelCards.RewardQuality(onRendered.Auc, onRendered.MeanIoU, onRendered.Positives, onRendered.Count));
        AtomicFile.WriteAllText(Path.Combine(outDir, ModelCards.FileName), card);
        return new Result(outDir, card);
    }
}
