using System.CommandLine;
using FocusNFix.Cli;

var root = new RootCommand("fnf: Focus-N-Fix region-aware reward fine-tuning for text-to-image diffusion models (diffusers folder format, safetensors only).");
root.Subcommands.Add(SampleCommand.Create());
root.Subcommands.Add(CheckCommand.Create());
root.Subcommands.Add(WorldCommand.Create());
root.Subcommands.Add(TrainCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(SweepCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(HeatmapCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
FocusNFix.IO.Interruption.ExitOnCtrlC();
return CliErrors.Run(() => CliErrors.InvokeOrRefuse(root.Parse(args)));
