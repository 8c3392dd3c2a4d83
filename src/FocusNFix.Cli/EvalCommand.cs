using System.CommandLine;
using FocusNFix.Evaluation;
using FocusNFix.IO;
using FocusNFix.Masks;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using FocusNFix.Schedulers;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;

namespace FocusNFix.Cli;

/// <summary><c>fnf eval</c>: base model vs LoRAs on prompts x seeds, with rewards, oracle and preservation; writes the report.</summary>
public static class EvalCommand
{
    public static Command Create()
    {
        var runs = new Option<string[]>("--run") { Description = "[NAME=]DIR of a training run folder (repeat): its LoRA and log are compared, and the model, sampling (steps, guidance, eta, scheduler), device, dtype, reward, heatmap and mask settings come from its config.json unless given here; NAME defaults to the run's objective", DefaultValueFactory = _ => Array.Empty<string>() };
        var model = new Option<string?>("--model") { Description = "Base pipeline folder (required without --run)" };
        var loras = new Option<string[]>("--lora") { Description = "NAME=FILE of a LoRA to compare (repeat for several)", DefaultValueFactory = _ => Array.Empty<string>() };
        var logs = new Option<string[]>("--training-log") { Description = "NAME=log.jsonl of a training run, for the curves (repeat)", DefaultValueFactory = _ => Array.Empty<string>() };
        var prompts = new Option<string?>("--prompts") { Description = "Prompt file, one per line (default: the world's test split)" };
        var world = new Option<string?>("--world") { Description = "world.json: enables the oracle figures (default: world.json beside the model folder, if any)" };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per prompt (1000, 1001, ...)", DefaultValueFactory = _ => 1 }.AtLeast(1);
        var target = new Option<string?>("--reward") { Description = "Target reward TYPE:PATH[,EXTRA] (the aspect being fixed; required without --run, which takes the run's rewards)" };
        var others = new Option<string[]>("--other") { Description = "Other reward TYPE:PATH[,EXTRA] to report, not optimised (repeat)", DefaultValueFactory = _ => Array.Empty<string>() };
        var heatmap = new Option<string?>("--heatmap") { Description = "Heatmap source for the preservation masks (see fnf heatmap; required without --run, which takes the run's); without --run masks are built with the training defaults (threshold 0.5, dilation 2, no normalisation)" };
        var steps = CommonOptions.SamplingSteps();
        var guidance = CommonOptions.Guidance();
        var scheduler = new Option<string?>("--scheduler") { Description = $"Scheduler: {string.Join("|", SchedulerFactory.Names)} (default: the run's, else the pipeline's own)" };
        var eta = new Option<double?>("--eta") { Description = "DDIM eta (default: the run's, else 0)" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var output = new Option<string>("--out") { Description = "Report folder", DefaultValueFactory = _ => "runs/eval" };
        var threads = CommonOptions.Threads();
        var shard = new Option<string?>("--shard") { Description = "i/n: evaluate only shard i of n (0-based) of prompts x seeds, in whole sampling batches; combine the n output folders with fnf eval merge" };
        var batch = new Option<int>("--batch") { Description = "Images sampled and scored together (shards are cut in these batches)", DefaultValueFactory = _ => EvalSetup.DefaultBatchSize }.AtLeast(1);
        var cmd = new Command("eval", "Evaluate a base model and LoRAs: target and other rewards, oracle figures, preservation inside/outside the mask; writes report.json/md/html")
        {
            runs, model, loras, logs, prompts, world, seeds, target, others, heatmap, steps, guidance, scheduler, eta, device, dtype, output, threads, shard, batch,
        };
        cmd.Subcommands.Add(MergeCommand());
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var part = pr.GetValue(shard) is { } sh ? EvalShard.Parse(sh) : EvalShard.Whole;
            var trained = pr.GetValue(runs)!.Select(r => { var (name, dir) = ParseRun(r); return TrainedRun.Open(dir, name); }).ToList();
            bool Given(Option o) => pr.GetResult(o) is { Implicit: false };
            var overridden = new Dictionary<string, Option>
            {
                ["model"] = model, ["dtype"] = dtype, ["sampling.steps"] = steps, ["sampling.guidance_scale"] = guidance, ["sampling.eta"] = eta,
                ["sampling.scheduler"] = scheduler, ["rewards"] = target, ["heatmap"] = heatmap,
            }.Where(kv => Given(kv.Value)).Select(kv => kv.Key).ToHashSet();
            TrainedRun.CheckAgree(trained, overridden);
            var run = trained.FirstOrDefault()?.Config;

            var outDir = pr.GetValue(output)!;
            // Every file and value that needs no model is refused before the rewards and the pipeline load.
            OutputFolder.Check(outDir, "--out");
            CommonOptions.CheckSampling(pr.GetValue(steps), pr.GetValue(guidance));
            var loraList = trained.Select(r => (r.Name, r.LoraPath)).Concat(pr.GetValue(loras)!.Select(ParsePair)).ToList();
            var logList = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, path) in trained.Select(r => (r.Name, r.LogPath)).Concat(pr.GetValue(logs)!.Select(ParsePair)))
                if (!logList.TryAdd(name, path)) throw new InvalidInputException($"--training-log {name}={path}: the name '{name}' is given twice");
            Evaluator.CheckFiles(loraList, logList);

            var placement = CommonOptions.ParseDevice(Given(device) || run is null ? pr.GetValue(device)! : run.Device);
            var precision = CommonOptions.ParseDType(Given(dtype) || run is null ? pr.GetValue(dtype)! : run.Dtype);
            var modelDir = pr.GetValue(model) ?? run?.Model ?? throw new InvalidInputException("--model DIR is required (or --run DIR of a training run)");
            var schedulerName = pr.GetValue(scheduler) ?? run?.Sampling.Scheduler;
            var worldPath = pr.GetValue(world) ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelDir).TrimEnd('/'))!, WorldSpec.FileName);
            ShapesWorldBenchmark? w = File.Exists(worldPath) ? ShapesWorldBenchmark.Load(worldPath) : null;
            IReadOnlyList<string> promptList = pr.GetValue(prompts) is { } pf
                ? FocusNFix.IO.PromptFile.Read(pf)
                : w != null ? PromptSplits.Prompts(w.Spec, Split.Test) : throw new InvalidInputException("--prompts FILE is required when the model has no world.json beside it");

            using var pipe = TextToImagePipeline.Load(modelDir, placement, precision);
            if (schedulerName is not null) pipe.UseScheduler(schedulerName);
            var (stepCount, guidanceScale) = pipe.Folder.ResolveSampling(pr.GetValue(steps) ?? run?.Sampling.Steps, pr.GetValue(guidance) ?? run?.Sampling.GuidanceScale);
            var targetReward = pr.GetValue(target) is { } t ? RewardFactory.CreateReward(SourceSpecs.Reward(t), pipe.Device)
                : run is not null ? RewardFactory.CreateRewards(run.Rewards, pipe.Device)
                : throw new InvalidInputException("--reward TYPE:PATH is required (or --run DIR of a training run)");
            using var ownedReward = targetReward as IDisposable;
            using var heat = pr.GetValue(heatmap) is { } h ? RewardFactory.CreateHeatmap(SourceSpecs.Heatmap(h), pipe.Device, targetReward)
                : run is not null ? RewardFactory.CreateHeatmap(run.Heatmap, pipe.Device, targetReward)
                : throw new InvalidInputException("--heatmap SOURCE is required (or --run DIR of a training run)");
            var otherScorers = new Dictionary<string, ImageScorer>();
            var otherRewards = new List<IReward>();
            using var disposeOthers = new Disposal(() => { foreach (var r in otherRewards) (r as IDisposable)?.Dispose(); });
            foreach (var o in pr.GetValue(others)!)
            {
                var spec = SourceSpecs.Reward(o);
                var r = RewardFactory.CreateReward(spec, pipe.Device);
                otherRewards.Add(r);
                otherScorers[$"{spec.Type}:{Path.GetFileName(spec.Path.TrimEnd('/'))}"] = (im, p) =>
                {
                    using var s = r.Score(im, p).detach().to(TorchSharp.torch.ScalarType.Float64).cpu();
                    return s.data<double>().ToArray();
                };
            }
            var setup = new EvalSetup
            {
                Prompts = promptList, Seeds = Enumerable.Range(0, pr.GetValue(seeds)).Select(i => 1000L + i).ToList(),
                Loras = loraList, TrainingLogs = logList,
                Steps = stepCount, GuidanceScale = guidanceScale, Eta = pr.GetValue(eta) ?? run?.Sampling.Eta ?? 0.0, Scheduler = schedulerName,
                Target = targetReward, TargetName = "target_reward", Others = otherScorers, Heatmap = heat, Oracle = w is null ? null : w.OracleFigures,
                // The run's masks, else those a training run builds by default (no per-image normalisation, which would give
                // every clean image a mask made of heatmap noise), so inside/outside figures mean what they meant in training.
                Mask = run?.Mask ?? new TrainingConfig().Mask,
                Shard = part, BatchSize = pr.GetValue(batch),
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

    /// <summary><c>fnf eval merge DIR... --out OUT</c>: the shards' folders into the report of the unsharded evaluation.</summary>
    static Command MergeCommand()
    {
        var dirs = new Argument<string[]>("DIR") { Description = "Output folders of fnf eval --shard i/n, one per shard (any order)", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "Report folder of the merged evaluation", DefaultValueFactory = _ => "runs/eval" };
        var cmd = new Command("merge", "Combine the output folders of fnf eval --shard i/n into the report an unsharded evaluation writes (same figures exactly)") { dirs, output };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            var outDir = pr.GetValue(output)!;
            var merged = ShardMerge.Merge(pr.GetValue(dirs)!, outDir);
            merged.Notes["command"] = "fnf " + string.Join(" ", Environment.GetCommandLineArgs().Skip(1));
            ReportWriter.Write(merged, outDir);
            Console.WriteLine(ReportWriter.MarkdownTable(merged));
            Console.WriteLine($"report: {Path.Combine(outDir, "report.html")}");
            return 0;
        }));
        return cmd;
    }

    sealed class Disposal(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }

    static (string Name, string Path) ParsePair(string text)
    {
        int eq = text.IndexOf('=');
        if (eq <= 0) throw new InvalidInputException($"'{text}': expected NAME=FILE");
        return (text[..eq], text[(eq + 1)..]);
    }

    // A run folder, optionally named: NAME=DIR. A folder whose own name holds '=' exists on disk and is taken whole.
    static (string? Name, string Dir) ParseRun(string text)
    {
        int eq = text.IndexOf('=');
        return eq <= 0 || Directory.Exists(text) ? (null, text) : (text[..eq], text[(eq + 1)..]);
    }
}
