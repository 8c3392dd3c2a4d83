using System.CommandLine;
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
        var cmd = new Command("train", "Train a LoRA with the focus-n-fix, draft or global objective (DRaFT-K backprop through sampling)") { config, print, resume, overwrite };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            if (pr.GetValue(print))
            {
                Console.WriteLine(new TrainingConfig().ToJson());
                return 0;
            }
            var path = pr.GetValue(config) ?? throw new InvalidInputException("--config FILE is required (or --print-config to see the defaults)");
            var cfg = TrainingConfig.Load(path);
            Run(cfg, pr.GetValue(resume), pr.GetValue(overwrite));
            return 0;
        }));
        return cmd;
    }

    /// <summary>Trains with a progress bar showing the live figures; returns the run folder.</summary>
    public static string Run(TrainingConfig cfg, bool resume, bool overwrite = false)
    {
        using var trainer = Progress.RunWithStatus("preparing (originals, heatmaps, masks)", report =>
            new FocusNFixTrainer(cfg, resume, (what, d, t) => report(d, t, what), overwrite: overwrite));
        using var tb = new TensorBoardLog(trainer.Run.TensorBoardDir);
        tb.Hyperparameters(trainer.Config.ToJson(), trainer.StartStep);
        Progress.RunWithStatus($"training {cfg.Objective}", report =>
        {
            int total = cfg.Train.Steps;
            return trainer.Train(e => report(e.Step + 1, total,
                $"loss {e.Loss:F4} reward {e.Reward:F4} constraint {e.Constraint:F4} out {e.ChangeOutside:F4}{(e.SkippedTotal > 0 ? $" skipped {e.SkippedTotal}" : "")}"), tb);
        });
        Console.WriteLine($"{cfg.Objective}: wrote the LoRA to {trainer.RunDir}: {Lora.RunFolderLora.DiffusersName} (diffusers), {Lora.PeftAdapterConfig.FileName} + {Lora.PeftAdapterConfig.WeightsName} (PEFT), {Lora.RunFolderLora.KohyaName}");
        return trainer.RunDir;
    }
}
