using System.CommandLine;
using FocusNFix.Evaluation;
using FocusNFix.IO;
using FocusNFix.Masks;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using FocusNFix.Training;
using FocusNFix.World;

namespace FocusNFix.Cli;

/// <summary><c>fnf eval</c>: base model vs LoRAs on prompts x seeds, with rewards, oracle and preservation; writes the report.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Base pipeline folder", Required = true };
        var loras = new Option<string[]>("--lora") { Description = "NAME=FILE of a LoRA to compare (repeat for several)", DefaultValueFactory = _ => Array.Empty<string>() };
        var logs = new Option<string[]>("--training-log") { Description = "NAME=log.jsonl of a training run, for the curves (repeat)", DefaultValueFactory = _ => Array.Empty<string>() };
        var prompts = new Option<string?>("--prompts") { Description = "Prompt file, one per line (default: the world's test split)" };
        var world = new Option<string?>("--world") { Description = "world.json: enables the oracle figures (default: world.json beside the model folder, if any)" };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per prompt (1000, 1001, ...)", DefaultValueFactory = _ => 1 }.AtLeast(1);
        var target = new Option<string>("--reward") { Description = "Target reward TYPE:PATH[,EXTRA] (the aspect being fixed)", Required = true };
        var others = new Option<string[]>("--other") { Description = "Other reward TYPE:PATH[,EXTRA] to report, not optimised (repeat)", DefaultValueFactory = _ => Array.Empty<string>() };
        var heatmap = new Option<string>("--heatmap") { Description = "Heatmap source for the preservation masks (see fnf heatmap); masks are built with the training defaults (threshold 0.5, dilation 2, no normalisation)", Required = true };
        var steps = CommonOptions.SamplingSteps();
        var guidance = CommonOptions.Guidance();
        var output = new Option<string>("--out") { Description = "Report folder", DefaultValueFactory = _ => "runs/eval" };
        var threads = CommonOptions.Threads();
        var cmd = new Command("eval", "Evaluate a base model and LoRAs: target and other rewards, oracle figures, preservation inside/outside the mask; writes report.json/md/html")
        {
            model, loras, logs, prompts, world, seeds, target, others, heatmap, steps, guidance, output, threads,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var outDir = pr.GetValue(output)!;
            // Every file and value that needs no model is refused before the rewards and the pipeline load.
            OutputFolder.Check(outDir, "--out");
            CommonOptions.CheckSampling(pr.GetValue(steps), pr.GetValue(guidance));
            var loraList = pr.GetValue(loras)!.Select(ParsePair).ToList();
            var logList = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, path) in pr.GetValue(logs)!.Select(ParsePair))
                if (!logList.TryAdd(name, path)) throw new InvalidInputException($"--training-log {name}={path}: the name '{name}' is given twice");
            Evaluator.CheckFiles(loraList, logList);
            var modelDir = pr.GetValue(model)!;
            var worldPath = pr.GetValue(world) ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelDir).TrimEnd('/'))!, WorldSpec.FileName);
            ShapesWorld? w = File.Exists(worldPath) ? ShapesWorld.Load(worldPath) : null;
            IReadOnlyList<string> promptList = pr.GetValue(prompts) is { } pf
                ? InputFile.ReadLines(pf, "prompt file").Select(l => l.Trim()).Where(l => l.Length > 0).ToList()
                : w != null ? PromptSplits.Prompts(w.Spec, Split.Test) : throw new InvalidInputException("--prompts FILE is required when the model has no world.json beside it");
            var targetReward = RewardFactory.CreateReward(SourceSpecs.Reward(pr.GetValue(target)!));
            var heat = RewardFactory.CreateHeatmap(SourceSpecs.Heatmap(pr.GetValue(heatmap)!), targetReward);
            var otherScorers = new Dictionary<string, ImageScorer>();
            foreach (var o in pr.GetValue(others)!)
            {
                var spec = SourceSpecs.Reward(o);
                var r = RewardFactory.CreateReward(spec);
                otherScorers[$"{spec.Type}:{Path.GetFileName(spec.Path.TrimEnd('/'))}"] = (im, p) =>
                {
                    using var s = r.Score(im, p).detach().to(TorchSharp.torch.ScalarType.Float64).cpu();
                    return s.data<double>().ToArray();
                };
            }
            using var pipe = TextToImagePipeline.Load(modelDir);
            var (stepCount, guidanceScale) = pipe.Folder.ResolveSampling(pr.GetValue(steps), pr.GetValue(guidance));
            var setup = new EvalSetup
            {
                Prompts = promptList, Seeds = Enumerable.Range(0, pr.GetValue(seeds)).Select(i => 1000L + i).ToList(),
                Loras = loraList, TrainingLogs = logList,
                Steps = stepCount, GuidanceScale = guidanceScale,
                Target = targetReward, TargetName = "target_reward", Others = otherScorers, Heatmap = heat, Oracle = w is null ? null : w.OracleFigures,
                // The masks a training run builds by default (no per-image normalisation, which would give every clean
                // image a mask made of heatmap noise), so inside/outside figures mean what they meant in training.
                Mask = new TrainingConfig().Mask,
            };
            var result = Progress.RunWithStatus("evaluating", report => Evaluator.Run(pipe, setup, outDir, (what, d, t) => report(d, t, what)));
            result.Notes["command"] = "fnf " + string.Join(" ", Environment.GetCommandLineArgs().Skip(1));
            ReportWriter.Write(result, outDir);
            Console.WriteLine(ReportWriter.MarkdownTable(result));
            Console.WriteLine($"report: {Path.Combine(outDir, "report.html")}");
            return 0;
        }));
        return cmd;
    }

    static (string Name, string Path) ParsePair(string text)
    {
        int eq = text.IndexOf('=');
        if (eq <= 0) throw new InvalidInputException($"'{text}': expected NAME=FILE");
        return (text[..eq], text[(eq + 1)..]);
    }
}
