using System.CommandLine;
using FocusNFix.Experiments;

namespace FocusNFix.Cli;

/// <summary>
/// <c>fnf sweep</c>: a grid of methods and settings on one ShapesWorld defect, each trained with several seeds and
/// evaluated on one split, reported as Pareto fronts with bootstrap intervals. Resumable with --resume.
/// </summary>
public static class SweepCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config") { Description = "Sweep config (JSON; see `fnf sweep --write-config`); default: the built-in grid for --defect" };
        var defect = new Option<string>("--defect") { Description = "Defect of the built-in grid when no --config is given: hazard, glitch or rot", DefaultValueFactory = _ => "hazard" };
        var models = new Option<string>("--models") { Description = "Folder of the bundled ShapesWorld models (for the built-in grid)", DefaultValueFactory = _ => FocusNFix.WorldModels.WorldFolder.Bundled };
        var output = new Option<string?>("--out") { Description = "Output folder (overrides the config's output_dir)" };
        var split = new Option<string?>("--split") { Description = "val (choose settings) or test (final figures, once); overrides the config's split" };
        var finalFrom = new Option<string?>("--final-from") { Description = "Folder of a finished val sweep: run each method's chosen setting once on the test prompts (output: that folder + '-test', or --out)" };
        var writeConfig = new Option<string?>("--write-config") { Description = "Write the sweep config (the built-in grid, or --config with the overrides) to this file and stop" };
        var shard = new Option<string?>("--shard") { Description = "i/n: train and evaluate only setting k with k mod n = i (several processes or Slurm array tasks on one shared folder); afterwards an unsharded --resume writes the report from the cached work" };
        var resume = new Option<bool>("--resume") { Description = "Continue an earlier sweep in the output folder: finished runs and evaluations are kept" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Delete an earlier sweep's files in the output folder (nothing else) and start over" };
        var threads = CommonOptions.Threads();
        var cmd = new Command("sweep", "Sweep methods x settings x training seeds on a ShapesWorld defect; Pareto fronts with bootstrap 95% intervals")
        {
            config, defect, models, output, split, finalFrom, writeConfig, shard, resume, overwrite, threads,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            if (pr.GetValue(resume) && pr.GetValue(overwrite)) throw new InvalidInputException("--resume and --overwrite: expected at most one of them");
            var path = pr.GetValue(config);
            var from = pr.GetValue(finalFrom);
            if (from != null && (path != null || pr.GetValue(split) != null)) throw new InvalidInputException("--final-from: expected without --config and --split (it takes the val sweep's config, on the test split)");
            var cfg = from != null ? SweepPlan.FinalFrom(from) : path is null ? SweepConfig.Default(pr.GetValue(defect)!, pr.GetValue(models)!) : SweepConfig.Load(path);
            if (pr.GetValue(output) is { } o) cfg.OutputDir = o;
            if (pr.GetValue(split) is { } s) cfg.Split = s;
            cfg.Validate(path ?? "sweep");
            if (pr.GetValue(writeConfig) is { } target)
            {
                IO.OutputPaths.RefuseExisting(new[] { target }, overwrite: pr.GetValue(overwrite), "--write-config");
                IO.AtomicFile.WriteAllText(target, cfg.ToJson() + "\n");
                Console.WriteLine($"wrote {target}");
                return 0;
            }
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var plan = new SweepPlan(cfg);
            var part = pr.GetValue(shard) is { } sh ? FocusNFix.Evaluation.EvalShard.Parse(sh) : FocusNFix.Evaluation.EvalShard.Whole;
            var run = new SweepRun(plan, pr.GetValue(resume) ? EarlierOutput.Resume : pr.GetValue(overwrite) ? EarlierOutput.Overwrite : EarlierOutput.Refuse, part);
            int trained = plan.Settings.Count(x => x.Trained) * cfg.TrainSeeds.Count;
            Console.WriteLine($"sweep: {plan.Settings.Count} settings ({trained} training runs), evaluated on the {cfg.Split} prompts; folder {cfg.OutputDir}");
            run.TrainAll((c, resumeRun) => TrainCommand.Run(c, resumeRun), Console.WriteLine);
            if (!part.IsWhole)
            {
                Progress.RunWithStatus($"evaluating shard {part} on the {cfg.Split} prompts", report => run.EvaluateAll((what, d, t) => report(d, t, what)));
                Console.WriteLine($"shard {part} done; when every shard has finished, run the same command without --shard and with --resume: it writes the report from the cached runs and figures");
                return 0;
            }
            var rows = Progress.RunWithStatus($"evaluating on the {cfg.Split} prompts", report => run.EvaluateAll((what, d, t) => report(d, t, what)));
            var result = run.Report(rows, WorldCommand.CommandLine());
            Console.WriteLine($"report: {Path.Combine(cfg.OutputDir, SweepReport.MarkdownFile)} ({result.Points.Count} settings)");
            return 0;
        }));
        return cmd;
    }
}
