using System.CommandLine;
using System.Diagnostics;
using FocusNFix.Evaluation;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using FocusNFix.Training;
using FocusNFix.World;
using Spectre.Console;

namespace FocusNFix.Cli;

/// <summary>
/// <c>fnf demo</c>: the README's main command. On the bundled ShapesWorld models it fixes one defect with
/// focus-n-fix, draft and global on the same training prompts and budget, evaluates all of them and the base model
/// on the held-out test prompts, and writes the report.
/// </summary>
public static class DemoCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "runs/demo" };
        var defect = new Option<string>("--defect") { Description = "hazard (safety analogue) or glitch (artifact analogue)", DefaultValueFactory = _ => "hazard" };
        var models = new Option<string>("--models") { Description = "Folder of the bundled ShapesWorld models", DefaultValueFactory = _ => WorldCommand.DefaultModels };
        var steps = new Option<int>("--steps") { Description = "Training steps per method", DefaultValueFactory = _ => DemoPlan.DefaultSteps };
        var seeds = new Option<int>("--eval-seeds") { Description = "Seeds per test prompt in the evaluation", DefaultValueFactory = _ => 1 };
        var threads = CommonOptions.Threads();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var cmd = new Command("demo", "ShapesWorld demo: fix a defect with focus-n-fix vs draft vs global, evaluate on held-out prompts, write the report")
        {
            output, defect, models, steps, seeds, threads, device, dtype,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            var clock = Stopwatch.StartNew();
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            // Parsed here so a bad value fails before any training starts.
            CommonOptions.ParseDevice(pr.GetValue(device)!);
            CommonOptions.ParseDType(pr.GetValue(dtype)!);
            var plan = new DemoPlan(pr.GetValue(models)!, pr.GetValue(output)!, pr.GetValue(defect)!, pr.GetValue(steps), pr.GetValue(seeds))
            {
                Device = pr.GetValue(device)!, Dtype = pr.GetValue(dtype)!,
            };
            var logs = new Dictionary<string, string>();
            var loras = new List<(string, string)>();
            foreach (var method in DemoPlan.Methods)
            {
                var cfg = plan.TrainingConfig(method);
                var runDir = TrainCommand.Run(cfg, resume: false);
                logs[method] = Path.Combine(runDir, FocusNFixTrainer.LogName);
                loras.Add((method, Path.Combine(runDir, FocusNFixTrainer.FinalPeftName)));
            }
            var result = Progress.RunWithStatus("evaluating on the test prompts", report => plan.Evaluate(loras, logs, (what, d, t) => report(d, t, what)));
            result.Notes["wall_time"] = $"{clock.Elapsed.TotalMinutes:F1} min";
            result.Notes["command"] = "fnf " + string.Join(" ", Environment.GetCommandLineArgs().Skip(1));
            ReportWriter.Write(result, plan.OutDir);
            Console.WriteLine(ReportWriter.MarkdownTable(result));
            Console.WriteLine($"report: {Path.Combine(plan.OutDir, "report.html")} (wall time {clock.Elapsed.TotalMinutes:F1} min)");
            return 0;
        }));
        return cmd;
    }
}
