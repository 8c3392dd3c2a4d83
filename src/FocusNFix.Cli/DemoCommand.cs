using System.CommandLine;
using FocusNFix.Evaluation;
using FocusNFix.Experiments;
using FocusNFix.WorldModels;

namespace FocusNFix.Cli;

/// <summary>
/// <c>fnf demo</c>: the README's main command. On the bundled ShapesWorld models it fixes one defect with
/// focus-n-fix and its baselines (draft, global; for rot also ReFL, SLD and the negative prompt) on the same training
/// prompts, seeds and budget, evaluates all of them and the base model on the held-out test prompts, and writes the report.
/// </summary>
public static class DemoCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/demo" };
        var defect = new Option<string>("--defect") { Description = "rot (a large-area defect: where region-awareness shows), hazard (safety analogue) or glitch (artifact analogue)", DefaultValueFactory = _ => DemoPlan.DefaultDefect };
        var models = new Option<string>("--models") { Description = "Folder of the bundled ShapesWorld models", DefaultValueFactory = _ => WorldFolder.Bundled };
        var steps = new Option<int?>("--steps") { Description = $"Training steps per method (default: {DemoPlan.RotSteps} for rot, {DemoPlan.DefaultSteps} for hazard and glitch)" };
        var testPrompts = new Option<int?>("--test-prompts") { Description = $"Evaluate on the first N test prompts (default: {DemoPlan.RotTestPrompts} for rot, all 128 for hazard and glitch)" };
        var poolSeeds = new Option<int?>("--pool-seeds") { Description = $"Seeds per training prompt in the pool of 64 train prompts (default: 1 for rot, the sweep's {DemoPlan.SweepPoolSeeds} for hazard and glitch)" };
        var seeds = new Option<int>("--eval-seeds") { Description = "Seeds per test prompt in the evaluation", DefaultValueFactory = _ => 1 };
        var resume = new Option<bool>("--resume") { Description = "Continue an earlier demo in --out: each method from its newest checkpoint, then evaluate again" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Delete an earlier demo's files in --out (its runs, cache, images and report; nothing else) and start over" };
        var threads = CommonOptions.Threads();
        var jobs = new Option<int?>("--jobs") { Description = $"Methods trained at once, each in its own process with --threads (default there: cores / jobs) threads (default: {DemoPlan.DefaultJobs("cpu", 2)} on a CPU with 2 or more cores, else 1; 1 trains them in this process one after the other)" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        // What the demo's own child processes run (--jobs N): one part of the evaluation, after every method has trained.
        var evalShard = new Option<string?>("--eval-shard") { Description = "i/n: only evaluate part i of n of the test prompts x seeds into <out>/eval-shards/i (the demo's child processes; every method must have finished training)", Hidden = true };
        var cmd = new Command("demo", "ShapesWorld demo: fix a defect with focus-n-fix vs its baselines (draft, global; for rot also ReFL, SLD, negative prompt), evaluate on held-out prompts, write the report")
        {
            output, defect, models, steps, testPrompts, poolSeeds, seeds, resume, overwrite, threads, jobs, device, dtype, evalShard,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            if (pr.GetValue(resume) && pr.GetValue(overwrite)) throw new InvalidInputException("--resume and --overwrite: expected at most one of them");
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            // Parsed here so a bad value fails before any training starts.
            CommonOptions.ParseDevice(pr.GetValue(device)!);
            CommonOptions.ParseDType(pr.GetValue(dtype)!);
            var defectName = pr.GetValue(defect)!;
            var plan = new DemoPlan(pr.GetValue(models)!, pr.GetValue(output)!, defectName, pr.GetValue(steps), pr.GetValue(seeds))
            {
                Device = pr.GetValue(device)!, Dtype = pr.GetValue(dtype)!,
                TestPrompts = pr.GetValue(testPrompts) ?? DemoPlan.DemoTestPromptsFor(defectName),
                PoolSeedsPerPrompt = pr.GetValue(poolSeeds) ?? DemoPlan.DemoPoolSeedsFor(defectName),
            };
            if (pr.GetValue(evalShard) is { } shardText)
            {
                var shard = EvalShard.Parse(shardText, "--eval-shard");
                var trained = new DemoRun(plan, EarlierOutput.Resume);
                trained.TrainMethods((cfg, _) => throw new InvalidInputException($"{cfg.OutputDir}: not finished training; --eval-shard evaluates a demo whose methods have all trained"));
                Progress.RunWithStatus($"evaluating part {shard}", report => { trained.EvaluateShard(shard, (what, d, t) => report(d, t, what)); return 0; });
                return 0;
            }
            var demo = new DemoRun(plan, pr.GetValue(resume) ? EarlierOutput.Resume : pr.GetValue(overwrite) ? EarlierOutput.Overwrite : EarlierOutput.Refuse);
            int jobCount = pr.GetValue(jobs) ?? DemoPlan.DefaultJobs(plan.Device, Environment.ProcessorCount);
            EvaluationResult result;
            if (jobCount == 1)
            {
                demo.TrainMethods((cfg, resumeRun) => TrainCommand.Run(cfg, resumeRun));
                result = Progress.RunWithStatus("evaluating on the test prompts", report =>
                    demo.EvaluateAndReport(WorldCommand.CommandLine(), (what, d, t) => report(d, t, what)));
            }
            else
            {
                int childThreads = pr.GetValue(threads) > 0 ? pr.GetValue(threads) : Math.Max(1, Environment.ProcessorCount / jobCount);
                Console.WriteLine($"training {string.Join(", ", plan.TrainingOrder)}: {jobCount} at a time, each in its own process with {childThreads} thread(s); logs in {Path.Combine(plan.OutDir, "runs")}");
                Progress.RunTasks(report => demo.TrainMethods((cfg, resumeRun) =>
                {
                    var method = Path.GetFileName(cfg.OutputDir);
                    cfg.Threads = childThreads;
                    return ChildTraining.Run(cfg, resumeRun, method, plan.ChildConfig(method), plan.ChildLog(method), report);
                }, jobCount));
                // The small models scale poorly over threads: parts of the evaluation in parallel processes beat one process with all the cores.
                Console.WriteLine($"evaluating on the test prompts: {jobCount} parts at once, each in its own process with {childThreads} thread(s); logs in {plan.EvalShardsDir}");
                result = default!;
                Progress.RunTasks(report => result = demo.EvaluateShardsAndReport(WorldCommand.CommandLine(), jobCount, shard =>
                    ChildTraining.RunFnf($"evaluation part {shard}", EvalShardArgs(plan, shard, childThreads), Path.Combine(plan.EvalShardsDir, $"{shard.Index}.log"), append: false, report)));
            }
            Console.WriteLine(ReportWriter.MarkdownTable(result));
            Console.WriteLine($"report: {demo.ReportHtml} (wall time {demo.WallTime.TotalMinutes:F1} min)");
            return 0;
        }));
        return cmd;
    }

    /// <summary>The command line of the child process that evaluates one part of <paramref name="plan"/>'s evaluation.</summary>
    static List<string> EvalShardArgs(DemoPlan plan, EvalShard shard, int threads)
    {
        var args = new List<string>
        {
            "demo", "--out", plan.OutDir, "--defect", plan.Defect, "--models", plan.Models, "--steps", Inv(plan.Steps), "--eval-seeds", Inv(plan.EvalSeeds),
            "--pool-seeds", Inv(plan.PoolSeedsPerPrompt), "--device", plan.Device, "--dtype", plan.Dtype, "--threads", Inv(threads), "--eval-shard", shard.ToString(),
        };
        if (plan.TestPrompts is int n) args.AddRange(new[] { "--test-prompts", Inv(n) });
        return args;
    }

    static string Inv(int v) => v.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
