using System.CommandLine;
using FocusNFix.Pipelines;
using FocusNFix.ShapesWorld;
using FocusNFix.WorldModels;

namespace FocusNFix.Cli;

/// <summary><c>fnf world ...</c>: ShapesWorld, the embedded benchmark world.</summary>
public static class WorldCommand
{
    /// <summary>The bundled models, the default input of the commands that read them (fnf bench, fnf demo, fnf world eval).</summary>
    public const string DefaultModels = WorldFolder.Bundled;

    public static Command Create()
    {
        var cmd = new Command("world", "ShapesWorld: render scenes, list prompts, train and evaluate the bundled models");
        cmd.Subcommands.Add(Spec());
        cmd.Subcommands.Add(Render());
        cmd.Subcommands.Add(Prompts());
        cmd.Subcommands.Add(TrainBase());
        cmd.Subcommands.Add(WorldModelsCommand.TrainReward());
        cmd.Subcommands.Add(WorldModelsCommand.TrainJudge());
        cmd.Subcommands.Add(Eval());
        return cmd;
    }

    static Option<string?> WorldOption() => new("--world") { Description = $"world.json (default: {WorldFolder.Bundled}/world.json if present, else the built-in default world)" };

    static Option<bool> Overwrite() => new("--overwrite") { Description = "Replace the files of an earlier run at --out (otherwise that is an error)" };

    static Command Spec()
    {
        var output = new Option<string>("--out") { Description = "Where to write world.json (a folder gets world.json inside it)", DefaultValueFactory = _ => Path.Combine(WorldFolder.DefaultOut, WorldSpec.FileName) };
        var size = new Option<int>("--size") { Description = "Image size in pixels", DefaultValueFactory = _ => 32 };
        var overwrite = Overwrite();
        var cmd = new Command("spec", "Write world.json: palettes, reserved colours, places, shapes, grammar, defect rates, image size, prompt splits") { output, size, overwrite };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            var path = ShapesWorldBenchmark.Default(pr.GetValue(size)).WriteSpec(pr.GetValue(output)!, pr.GetValue(overwrite));
            Console.WriteLine(path);
            return 0;
        }));
        return cmd;
    }

    static Command Render()
    {
        var world = WorldOption();
        var count = new Option<int>("--count") { Description = "Number of scenes", DefaultValueFactory = _ => 16 }.AtLeast(1);
        var seed = new Option<long>("--seed") { Description = "First seed (scene k uses seed + k)", DefaultValueFactory = _ => 0 };
        var split = new Option<string?>("--split") { Description = "Draw prompts from this split only: train, val or test" };
        var output = new Option<string>("--out") { Description = "Output folder", DefaultValueFactory = _ => "out/world-render" };
        var overwrite = Overwrite();
        var cmd = new Command("render", "Render scenes with their defect masks and scene descriptions, for inspection") { world, count, seed, split, output, overwrite };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            var w = WorldFolder.LoadWorld(pr.GetValue(world));
            Split? sp = pr.GetValue(split) is { } s ? PromptSplits.ParseSplit(s) : null;
            var dir = pr.GetValue(output)!;
            RenderedSceneFolder.Write(w, dir, pr.GetValue(seed), pr.GetValue(count), sp, pr.GetValue(overwrite));
            Console.WriteLine($"wrote {pr.GetValue(count)} scenes to {dir}");
            return 0;
        }));
        return cmd;
    }

    static Command Prompts()
    {
        var world = WorldOption();
        var split = new Option<string>("--split") { Description = "train, val or test", DefaultValueFactory = _ => "test" };
        var cmd = new Command("prompts", "Print the prompts of a split, one per line") { world, split };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            var w = WorldFolder.LoadWorld(pr.GetValue(world));
            foreach (var p in PromptSplits.Prompts(w.Spec, PromptSplits.ParseSplit(pr.GetValue(split)!))) Console.WriteLine(p);
            return 0;
        }));
        return cmd;
    }

    static Command TrainBase()
    {
        var defaults = new BaseModelTrainingRun.Options();
        var world = WorldOption();
        var output = new Option<string>("--out") { Description = "Pipeline folder to write; world.json is added beside it when none is there", DefaultValueFactory = _ => defaults.OutDir };
        var tokenizer = new Option<string>("--tokenizer") { Description = "Folder with the CLIP tokenizer files (vocab.json, merges.txt)", DefaultValueFactory = _ => defaults.TokenizerDir };
        var steps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => defaults.Steps };
        var batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => defaults.BatchSize };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (AdamW)", DefaultValueFactory = _ => defaults.LearningRate };
        var seed = new Option<long>("--seed") { Description = "Seed of the data stream and the initialisation", DefaultValueFactory = _ => 0 };
        var evalSeeds = new Option<int>("--eval-seeds") { Description = "Seeds per test prompt in the final evaluation", DefaultValueFactory = _ => defaults.EvalSeeds };
        var logdir = new Option<string>("--logdir") { Description = "TensorBoard folder", DefaultValueFactory = _ => defaults.LogDir };
        var initFrom = new Option<string?>("--init-from") { Description = "Continue from this pipeline folder's weights (its model card is kept as the history)" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace the pipeline folder at --out (only a pipeline folder is replaced)" };
        var threads = CommonOptions.Threads();
        var cmd = new Command("train-base", "Train the base pixel-space text-to-image model on rendered, defect-carrying scenes; write the pipeline folder and its model card")
        {
            world, output, tokenizer, steps, batch, lr, seed, evalSeeds, logdir, initFrom, overwrite, threads,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var options = new BaseModelTrainingRun.Options
            {
                OutDir = pr.GetValue(output)!, WorldPath = pr.GetValue(world), TokenizerDir = pr.GetValue(tokenizer)!, Steps = pr.GetValue(steps),
                BatchSize = pr.GetValue(batch), LearningRate = pr.GetValue(lr), Seed = pr.GetValue(seed), EvalSeeds = pr.GetValue(evalSeeds),
                LogDir = pr.GetValue(logdir)!, InitFrom = pr.GetValue(initFrom), Overwrite = pr.GetValue(overwrite), CommandLine = CommandLine(),
            };
            var result = Progress.RunPhases(report => BaseModelTrainingRun.Run(options, report));
            Console.WriteLine(result.Figures.ToMarkdown());
            Console.WriteLine($"wrote {result.ModelDir} (wall time {result.WallTime.TotalMinutes:F1} min)");
            return 0;
        }));
        return cmd;
    }

    /// <summary>The command as typed, for model cards and reports.</summary>
    public static string CommandLine() => "fnf " + string.Join(" ", Environment.GetCommandLineArgs().Skip(1));

    static Command Eval()
    {
        var world = WorldOption();
        var model = new Option<string>("--model") { Description = "Pipeline folder", DefaultValueFactory = _ => Path.Combine(WorldFolder.Bundled, "base") };
        var lora = new Option<string?>("--lora") { Description = "LoRA file to apply" };
        var loraScale = new Option<double>("--lora-scale") { Description = "LoRA scale", DefaultValueFactory = _ => 1.0 };
        var split = new Option<string>("--split") { Description = "Prompt split", DefaultValueFactory = _ => "test" };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per prompt (1000, 1001, ...)", DefaultValueFactory = _ => 2 }.AtLeast(1);
        var steps = CommonOptions.SamplingSteps();
        var guidance = CommonOptions.Guidance();
        var threads = CommonOptions.Threads();
        var cmd = new Command("eval", "Sample prompts x seeds and print the oracle's figures (colour in place, shape decided, objects correct, erased or recoloured; defect rates and residue per kind)")
        {
            world, model, lora, loraScale, split, seeds, steps, guidance, threads,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var w = WorldFolder.LoadWorld(pr.GetValue(world));
            using var pipe = TextToImagePipeline.Load(pr.GetValue(model)!);
            if (pr.GetValue(lora) is { } lf) pipe.LoadLora(lf, pr.GetValue(loraScale));
            var prompts = PromptSplits.Prompts(w.Spec, PromptSplits.ParseSplit(pr.GetValue(split)!));
            var seedList = Enumerable.Range(0, pr.GetValue(seeds)).Select(i => 1000L + i).ToList();
            var (stepCount, guidanceScale) = pipe.Folder.ResolveSampling(pr.GetValue(steps), pr.GetValue(guidance));
            var verdicts = Progress.Run($"sampling {prompts.Count * seedList.Count} images (DDIM {stepCount} steps, guidance {guidanceScale})", report =>
                WorldEvaluation.Run(pipe, w, prompts, seedList, stepCount, guidanceScale, progress: report));
            Console.WriteLine(WorldEvalFigures.From(verdicts).ToMarkdown());
            return 0;
        }));
        return cmd;
    }
}
