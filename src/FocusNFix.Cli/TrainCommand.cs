using System.CommandLine;
using FocusNFix.Distributed;
using FocusNFix.Training;

namespace FocusNFix.Cli;

/// <summary><c>fnf train</c>: one Focus-N-Fix (or DRaFT / global-constraint) run described by a JSON config.</summary>
public static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config") { Description = "Run config (JSON); see --print-config for every field and its default" };
        var print = new Option<bool>("--print-config") { Description = "Print a complete default config and exit" };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in the config's output_dir from its newest checkpoint" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Delete the run files already in output_dir (config, logs, originals, checkpoints, LoRA; nothing else) and start again" };
        var cmd = new Command("train", "Train a LoRA with the focus-n-fix, draft or global objective (DRaFT-K backprop through sampling); under mpirun -np N, data-parallel over N processes") { config, print, resume, overwrite };
        var action = CliErrors.Action(pr =>
        {
            if (pr.GetValue(print))
            {
                Console.WriteLine(new TrainingConfig().ToJson());
                return 0;
            }
            var path = pr.GetValue(config) ?? throw new InvalidInputException("--config FILE is required (or --print-config to see the defaults)");
            var cfg = TrainingConfig.Load(path);
            Run(cfg, pr.GetValue(resume), pr.GetValue(overwrite), MpiLaunch.World());
            return 0;
        });
        cmd.SetAction(pr => CliErrors.Run(() => JobExit.Run(() => action(pr))));
        return cmd;
    }

    /// <summary>Trains with a progress bar showing the live figures; returns the run folder.</summary>
    /// <param name="group">the processes training together; only rank 0 reports progress and writes the run.</param>
    public static string Run(TrainingConfig cfg, bool resume, bool overwrite = false, IProcessGroup? group = null)
    {
        group ??= SingleProcess.Instance;
        bool leader = group.Rank == 0;
        using var trainer = leader
            ? Progress.RunWithStatus("preparing (originals, heatmaps, masks)", report =>
                new FocusNFixTrainer(cfg, resume, (what, d, t) => report(d, t, what), overwrite: overwrite, group: group))
            : new FocusNFixTrainer(cfg, resume, overwrite: overwrite, group: group);
        using var tb = leader ? new TensorBoardLog(trainer.Run.TensorBoardDir) : null;
        tb?.Hyperparameters(trainer.Config.ToJson(), trainer.StartStep);
        if (leader)
            Progress.RunWithStatus($"training {cfg.Objective}", report =>
            {
                int total = cfg.Train.Steps;
                return trainer.Train(e => report(e.Step + 1, total,
                    $"loss {e.Loss:F4} reward {e.Reward:F4} constraint {e.Constraint:F4} out {e.ChangeOutside:F4}{(e.SkippedTotal > 0 ? $" skipped {e.SkippedTotal}" : "")}"), tb);
            });
        else trainer.Train();
        if (group.Size > 1)
        {
            var (stepSeconds, share, steps) = trainer.Timing;
            Console.WriteLine($"rank {group.Rank} of {group.Size}: {steps} steps, {stepSeconds:F3} s per step, all-reduce {share * 100:F1}% of it");
        }
        if (leader)
            Console.WriteLine($"{cfg.Objective}: wrote the LoRA to {trainer.RunDir}: {Lora.RunFolderLora.DiffusersName} (diffusers), {Lora.PeftAdapterConfig.FileName} + {Lora.PeftAdapterConfig.WeightsName} (PEFT), {Lora.RunFolderLora.KohyaName}");
        if (leader && trainer.BudgetReading is { } reading)
            Console.WriteLine($"{cfg.Objective}: final lambda {trainer.FinalLambda:0.###} ({Training.RunFolder.LambdaName}); {reading}");
        return trainer.RunDir;
    }
}
