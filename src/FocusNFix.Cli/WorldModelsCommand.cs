using System.CommandLine;
using System.Text;
using FocusNFix.IO;
using FocusNFix.Pipelines;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;
using FocusNFix.WorldModels;
using static TorchSharp.torch;

namespace FocusNFix.Cli;

/// <summary><c>fnf world train-reward</c> and <c>fnf world train-judge</c>: the bundled region reward models and judge.</summary>
public static class WorldModelsCommand
{
    public static Command TrainReward()
    {
        var defect = new Option<string>("--defect") { Description = "hazard or glitch", Required = true };
        var baseModel = new Option<string>("--base") { Description = "Base pipeline whose samples (labelled by the oracle) join the rendered training data", DefaultValueFactory = _ => Path.Combine(WorldCommand.DefaultModels, "base") };
        var output = new Option<string?>("--out") { Description = "Output folder (default: models/shapesworld/reward-<defect>)" };
        var steps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => 800 };
        var samples = new Option<int>("--base-samples-seeds") { Description = "Seeds per train prompt for the base-model training samples", DefaultValueFactory = _ => 2 };
        var seed = new Option<long>("--seed") { Description = "Seed", DefaultValueFactory = _ => 0 };
        var logdir = new Option<string?>("--logdir") { Description = "TensorBoard folder (default: runs/world-reward-<defect>)" };
        var threads = CommonOptions.Threads(defaultThreads: 1);
        var cmd = new Command("train-reward", "Train a region reward model (per-pixel defect heatmap + image reward) on rendered scenes and oracle-labelled base-model samples")
        {
            defect, baseModel, output, steps, samples, seed, logdir, threads,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var d = pr.GetValue(defect)!;
            var kind = RegionRewardConfig.ParseDefect(d, "--defect");
            var w = WorldCommand.LoadWorld(null);
            using var pipe = TextToImagePipeline.Load(pr.GetValue(baseModel)!);
            var trainPrompts = PromptSplits.Prompts(w.Spec, Split.Train);
            var trainSeeds = Enumerable.Range(0, pr.GetValue(samples)).Select(i => 5000L + i).ToList();
            var extra = Progress.Run($"sampling {trainPrompts.Count * trainSeeds.Count} base-model training images", r => SampleAll(pipe, trainPrompts, trainSeeds, r));
            var extraMasks = WorldAugmentation.OracleMasks(w.Spec, kind, extra);
            using var log = new TensorBoardLog(pr.GetValue(logdir) ?? $"runs/world-reward-{d}");
            var options = new RewardModelTraining.Options(d, Steps: pr.GetValue(steps), Seed: pr.GetValue(seed));
            using var model = Progress.RunWithStatus($"training reward-{d}", r =>
                RewardModelTraining.Train(w, options, extra, extraMasks, (s, t, loss) => r(s, t, $"loss {loss:F4}"), log));
            var testPrompts = PromptSplits.Prompts(w.Spec, Split.Test);
            var testSeeds = new List<long> { 1000, 1001 };
            var held = Progress.Run($"sampling {testPrompts.Count * testSeeds.Count} held-out base-model images", r => SampleAll(pipe, testPrompts, testSeeds, r));
            var heldMasks = WorldAugmentation.OracleMasks(w.Spec, kind, held);
            var present = WorldAugmentation.OraclePresent(w.Spec, kind, held);
            var onSamples = RewardModelTraining.Evaluate(model, held, heldMasks, present);
            var onRendered = RewardModelTraining.EvaluateRendered(model, w, 1000);
            var outDir = pr.GetValue(output) ?? Path.Combine(WorldCommand.DefaultModels, $"reward-{d}");
            model.SavePretrained(outDir);
            var card = new StringBuilder();
            card.AppendLine($"# ShapesWorld region reward model: {d}");
            card.AppendLine();
            card.AppendLine($"A fully-convolutional network ({model.ParameterCount:N0} parameters) giving a per-pixel probability that a pixel belongs to a {d} defect (the heatmap), " +
                "and a differentiable image-level reward derived from it (see `RegionRewardModel` for the formula). Trained like RAHF on annotated images: rendered scenes with their exact masks, " +
                "plus base-model samples labelled by the oracle.");
            card.AppendLine();
            card.AppendLine("## Training");
            card.AppendLine($"- command: `fnf {string.Join(" ", Environment.GetCommandLineArgs().Skip(1))}`");
            card.AppendLine($"- seed {options.Seed}; {options.Steps} steps x batch {options.BatchSize} ({options.ExtraFraction:P0} of each batch from {extra.shape[0]} base-model samples of the train prompts, seeds {string.Join(", ", trainSeeds)}; the rest freshly rendered, augmented)");
            var (sampleSteps, sampleGuidance) = pipe.Folder.ResolveSampling(null, null);
            card.AppendLine($"- base-model samples drawn with DDIM {sampleSteps} steps, guidance {sampleGuidance} (the base model's recommended sampling), labelled by the oracle");
            card.AppendLine($"- wall time {clock.Elapsed.TotalMinutes:F1} min (including sampling and evaluation)");
            card.AppendLine();
            card.AppendLine("## Quality");
            card.AppendLine($"| data | images | with the defect | image-level AUC vs oracle | mean heatmap IoU (threshold 0.5) on images with the defect |");
            card.AppendLine("|---|---|---|---|---|");
            card.AppendLine($"| held-out base-model samples (test prompts x seeds 1000, 1001) | {onSamples.Count} | {onSamples.Positives} | {onSamples.Auc:F4} | {onSamples.MeanIoU:F4} |");
            card.AppendLine($"| rendered test-split scenes | {onRendered.Count} | {onRendered.Positives} | {onRendered.Auc:F4} | {onRendered.MeanIoU:F4} |");
            AtomicFile.WriteAllText(Path.Combine(outDir, "MODEL_CARD.md"), card.ToString());
            Console.WriteLine(card.ToString());
            return 0;
        }));
        return cmd;
    }

    public static Command TrainJudge()
    {
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => Path.Combine(WorldCommand.DefaultModels, "judge") };
        var steps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => 1500 };
        var seed = new Option<long>("--seed") { Description = "Seed", DefaultValueFactory = _ => 0 };
        var logdir = new Option<string>("--logdir") { Description = "TensorBoard folder", DefaultValueFactory = _ => "runs/world-judge" };
        var threads = CommonOptions.Threads(defaultThreads: 1);
        var cmd = new Command("train-judge", "Train the alignment judge (colour and shape per place) on rendered scenes") { output, steps, seed, logdir, threads };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var w = WorldCommand.LoadWorld(null);
            var options = new JudgeTraining.Options(Steps: pr.GetValue(steps), Seed: pr.GetValue(seed));
            using var log = new TensorBoardLog(pr.GetValue(logdir)!);
            using var judge = Progress.RunWithStatus("training judge", r => JudgeTraining.Train(w, options, (s, t, loss) => r(s, t, $"loss {loss:F4}"), log));
            var eval = JudgeTraining.Evaluate(judge, w, Split.Test, 1000);
            var outDir = pr.GetValue(output)!;
            judge.SavePretrained(outDir);
            var card = new StringBuilder();
            card.AppendLine("# ShapesWorld alignment judge");
            card.AppendLine();
            card.AppendLine("A small CNN that predicts, per place, the colour and shape of the object there (or none) and the background colour. " +
                "It measures prompt alignment the way a model would; Focus-N-Fix never optimises it.");
            card.AppendLine();
            card.AppendLine("## Training");
            card.AppendLine($"- command: `fnf {string.Join(" ", Environment.GetCommandLineArgs().Skip(1))}`");
            card.AppendLine($"- seed {options.Seed}; {options.Steps} steps x batch {options.BatchSize} freshly rendered train-split scenes (augmented like generator samples)");
            card.AppendLine($"- wall time {clock.Elapsed.TotalMinutes:F1} min");
            card.AppendLine();
            card.AppendLine("## Quality (1000 rendered test-split scenes)");
            card.AppendLine(eval.ToString());
            AtomicFile.WriteAllText(Path.Combine(outDir, "MODEL_CARD.md"), card.ToString());
            Console.WriteLine(card.ToString());
            return 0;
        }));
        return cmd;
    }

    /// <summary>Base-model samples for prompts x seeds with the model's recommended sampling, [N,3,H,W] in [0,1] on the CPU.</summary>
    public static Tensor SampleAll(TextToImagePipeline pipe, IReadOnlyList<string> prompts, IReadOnlyList<long> seeds, Action<int, int> report)
    {
        var parts = new List<Tensor>();
        var (steps, guidance) = pipe.Folder.ResolveSampling(null, null);
        WorldEvaluation.Run(pipe, WorldCommand.LoadWorld(null), prompts, seeds, steps, guidance,
            progress: report, onImage: (_, _, img) => parts.Add(img.clone()));
        var all = stack(parts);
        foreach (var p in parts) p.Dispose();
        return all;
    }
}
