using System.CommandLine;
using FocusNFix.WorldModels;

namespace FocusNFix.Cli;

/// <summary><c>fnf world train-reward</c> and <c>fnf world train-judge</c>: the bundled region reward models and judge.</summary>
public static class WorldModelsCommand
{
    public static Command TrainReward()
    {
        var defect = new Option<string>("--defect") { Description = "hazard, glitch or rot (rot needs a world that defines it)", Required = true };
        var world = new Option<string?>("--world") { Description = $"world.json (default: {WorldFolder.Bundled}/world.json if present, else the built-in default world)" };
        var baseModel = new Option<string>("--base") { Description = "Base pipeline whose samples (labelled by the oracle) join the rendered training data", DefaultValueFactory = _ => Path.Combine(WorldFolder.Bundled, "base") };
        var output = new Option<string?>("--out") { Description = $"Output folder (default: {WorldFolder.DefaultOut}/reward-<defect>)" };
        var steps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => 800 };
        var samples = new Option<int>("--base-samples-seeds") { Description = "Seeds per train prompt for the base-model training samples", DefaultValueFactory = _ => 2 };
        var seed = new Option<long>("--seed") { Description = "Seed", DefaultValueFactory = _ => 0 };
        var logdir = new Option<string?>("--logdir") { Description = "TensorBoard folder (default: runs/world-reward-<defect>)" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace the model files at --out (otherwise that is an error)" };
        var threads = CommonOptions.Threads(defaultThreads: 1);
        var cmd = new Command("train-reward", "Train a region reward model (per-pixel defect heatmap + image reward) on rendered scenes and oracle-labelled base-model samples")
        {
            defect, world, baseModel, output, steps, samples, seed, logdir, overwrite, threads,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var options = new RewardModelTrainingRun.Options
            {
                Defect = pr.GetValue(defect)!, WorldPath = pr.GetValue(world), BaseModel = pr.GetValue(baseModel)!, OutDir = pr.GetValue(output), Steps = pr.GetValue(steps),
                BaseSampleSeeds = pr.GetValue(samples), Seed = pr.GetValue(seed), LogDir = pr.GetValue(logdir), Overwrite = pr.GetValue(overwrite),
                CommandLine = WorldCommand.CommandLine(),
            };
            var result = Progress.RunPhases(report => RewardModelTrainingRun.Run(options, report));
            Console.WriteLine(result.Card);
            return 0;
        }));
        return cmd;
    }

    public static Command TrainJudge()
    {
        var world = new Option<string?>("--world") { Description = $"world.json (default: {WorldFolder.Bundled}/world.json if present, else the built-in default world)" };
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => Path.Combine(WorldFolder.DefaultOut, "judge") };
        var steps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => 1500 };
        var seed = new Option<long>("--seed") { Description = "Seed", DefaultValueFactory = _ => 0 };
        var logdir = new Option<string>("--logdir") { Description = "TensorBoard folder", DefaultValueFactory = _ => "runs/world-judge" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace the model files at --out (otherwise that is an error)" };
        var threads = CommonOptions.Threads(defaultThreads: 1);
        var cmd = new Command("train-judge", "Train the alignment judge (colour and shape per place) on rendered scenes") { world, output, steps, seed, logdir, overwrite, threads };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var options = new JudgeTrainingRun.Options
            {
                WorldPath = pr.GetValue(world), OutDir = pr.GetValue(output)!, Steps = pr.GetValue(steps), Seed = pr.GetValue(seed), LogDir = pr.GetValue(logdir)!,
                Overwrite = pr.GetValue(overwrite), CommandLine = WorldCommand.CommandLine(),
            };
            var result = Progress.RunPhases(report => JudgeTrainingRun.Run(options, report));
            Console.WriteLine(result.Card);
            return 0;
        }));
        return cmd;
    }
}
