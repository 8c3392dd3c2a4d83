using System.CommandLine;
using System.Text;
using FocusNFix.IO;
using FocusNFix.Models;
using FocusNFix.Pipelines;
using FocusNFix.Training;
using FocusNFix.World;
using static TorchSharp.torch;

namespace FocusNFix.Cli;

/// <summary><c>fnf world ...</c>: ShapesWorld, the embedded benchmark world.</summary>
public static class WorldCommand
{
    public const string DefaultModels = "models/shapesworld";

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

    static Option<string?> WorldOption() => new("--world") { Description = $"world.json (default: {DefaultModels}/world.json if present, else the built-in default world)" };

    public static ShapesWorld LoadWorld(string? path)
    {
        if (path != null) return ShapesWorld.Load(path);
        var bundled = Path.Combine(DefaultModels, WorldSpec.FileName);
        return File.Exists(bundled) ? ShapesWorld.Load(bundled) : ShapesWorld.Default();
    }

    static Command Spec()
    {
        var output = new Option<string>("--out") { Description = "Where to write world.json", DefaultValueFactory = _ => Path.Combine(DefaultModels, WorldSpec.FileName) };
        var size = new Option<int>("--size") { Description = "Image size in pixels", DefaultValueFactory = _ => 32 };
        var cmd = new Command("spec", "Write world.json: palettes, reserved colours, places, shapes, grammar, defect rates, image size, prompt splits") { output, size };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            var path = ShapesWorld.Default(pr.GetValue(size)).WriteSpec(pr.GetValue(output)!);
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
        var cmd = new Command("render", "Render scenes with their defect masks and scene descriptions, for inspection") { world, count, seed, split, output };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            var w = LoadWorld(pr.GetValue(world));
            Split? sp = pr.GetValue(split) is { } s ? PromptSplits.ParseSplit(s) : null;
            var dir = pr.GetValue(output)!;
            Directory.CreateDirectory(dir);
            var lines = new StringBuilder();
            for (int k = 0; k < pr.GetValue(count); k++)
            {
                long sd = pr.GetValue(seed) + k;
                var r = w.Generate(sd, sp);
                using var img = WorldImage.ToTensor(r.Rgb, r.Width, r.Height);
                Images.SavePng(img, Path.Combine(dir, $"{sd}.png"));
                using var hz = WorldImage.MaskToTensor(r.HazardMask, r.Width, r.Height);
                using var gl = WorldImage.MaskToTensor(r.GlitchMask, r.Width, r.Height);
                Masks.HeatmapMask.SavePng(hz, Path.Combine(dir, $"{sd}_hazard.png"));
                Masks.HeatmapMask.SavePng(gl, Path.Combine(dir, $"{sd}_glitch.png"));
                lines.AppendLine(System.Text.Json.JsonSerializer.Serialize(new { seed = sd, prompt = r.Prompt, hazard = r.HasHazard, glitch = r.HasGlitch }));
            }
            AtomicFile.WriteAllText(Path.Combine(dir, "scenes.jsonl"), lines.ToString());
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
            var w = LoadWorld(pr.GetValue(world));
            foreach (var p in PromptSplits.Prompts(w.Spec, PromptSplits.ParseSplit(pr.GetValue(split)!))) Console.WriteLine(p);
            return 0;
        }));
        return cmd;
    }

    static Command TrainBase()
    {
        var world = WorldOption();
        var output = new Option<string>("--out") { Description = "Pipeline folder to write", DefaultValueFactory = _ => Path.Combine(DefaultModels, "base") };
        var tokenizer = new Option<string>("--tokenizer") { Description = "Folder with the CLIP tokenizer files (vocab.json, merges.txt)", DefaultValueFactory = _ => "../shared/golden/clip_tokenizer" };
        var steps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => 2500 };
        var batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => 32 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (AdamW)", DefaultValueFactory = _ => 1e-3 };
        var seed = new Option<long>("--seed") { Description = "Seed of the data stream and the initialisation", DefaultValueFactory = _ => 0 };
        var evalSeeds = new Option<int>("--eval-seeds") { Description = "Seeds per test prompt in the final evaluation", DefaultValueFactory = _ => 2 };
        var logdir = new Option<string>("--logdir") { Description = "TensorBoard folder", DefaultValueFactory = _ => "runs/world-base" };
        var initFrom = new Option<string?>("--init-from") { Description = "Continue from this pipeline folder's weights (its model card is kept as the history)" };
        var threads = CommonOptions.Threads();
        var cmd = new Command("train-base", "Train the base pixel-space text-to-image model on rendered, defect-carrying scenes; write the pipeline folder and its model card")
        {
            world, output, tokenizer, steps, batch, lr, seed, evalSeeds, logdir, initFrom, threads,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var w = LoadWorld(pr.GetValue(world));
            var tokDir = pr.GetValue(tokenizer)!;
            var tok = ClipTokenizer.FromFolder(tokDir);
            var o = new PretrainOptions { Steps = pr.GetValue(steps), BatchSize = pr.GetValue(batch), LearningRate = pr.GetValue(lr), Seed = pr.GetValue(seed), PredictionType = BaseModelRecipe.PredictionType };
            manual_seed(o.Seed);
            using var unet = BaseModelRecipe.NewUNet(w.Spec.ImageSize);
            using var text = BaseModelRecipe.NewTextEncoder();
            var schedule = BaseModelRecipe.NewScheduler();
            string? history = null;
            if (pr.GetValue(initFrom) is { } init)
            {
                StateDict.LoadFile(unet, IO.WeightFiles.Find(Path.Combine(init, "unet"), "diffusion_pytorch_model"));
                StateDict.LoadFile(text, IO.WeightFiles.Find(Path.Combine(init, "text_encoder"), "model"));
                var oldCard = Path.Combine(init, "MODEL_CARD.md");
                history = File.Exists(oldCard) ? File.ReadAllText(oldCard) : null;
            }
            long unetParams = unet.parameters().Sum(p => p.numel()), textParams = text.parameters().Sum(p => p.numel());
            Console.WriteLine($"UNet {unetParams:N0} parameters, text encoder {textParams:N0}; {o.Steps} steps x batch {o.BatchSize}");
            using var log = new TensorBoardLog(pr.GetValue(logdir)!);
            (Tensor, IReadOnlyList<string>) Batch(int step)
            {
                var scenes = Enumerable.Range(0, o.BatchSize).Select(k => w.Generate(o.Seed * 1_000_003 + (long)step * o.BatchSize + k, Split.Train)).ToList();
                var (images, hz, gl) = WorldImage.ToBatch(scenes);
                hz.Dispose(); gl.Dispose();
                return (images, scenes.Select(s => s.Prompt).ToList());
            }
            var result = Progress.RunWithStatus("training base model", report =>
                DiffusionPretrainer.Train(unet, text, tok, schedule.AlphasCumprod, Batch, o, (d, t, loss) => report(d, t, $"loss {loss:F4}"), log));
            var outDir = pr.GetValue(output)!;
            BaseModelRecipe.Save(outDir, w.Spec.ImageSize, result.UnetWeights, result.TextWeights, tokDir);

            using var pipe = TextToImagePipeline.Load(outDir);
            var prompts = PromptSplits.Prompts(w.Spec, Split.Test);
            var seeds = Enumerable.Range(0, pr.GetValue(evalSeeds)).Select(i => 1000L + i).ToList();
            var verdicts = Progress.Run($"evaluating on {prompts.Count} test prompts x {seeds.Count} seeds", report =>
                WorldEvaluation.Run(pipe, w, prompts, seeds, BaseModelRecipe.DefaultSteps, BaseModelRecipe.DefaultGuidance, progress: report));
            var figures = WorldEvalFigures.From(verdicts);
            var card = BaseModelCard(Environment.GetCommandLineArgs(), o, w, unetParams, textParams, result, figures, seeds);
            if (history != null)
                card += "\n## History: the run this one continued from (its weights were the initialisation)\n\n" +
                    string.Join("\n", history.Split('\n').Select(l => l.StartsWith('#') ? "#" + l : l));
            AtomicFile.WriteAllText(Path.Combine(outDir, "MODEL_CARD.md"), card);
            Console.WriteLine(figures.ToMarkdown());
            Console.WriteLine($"wrote {outDir} (wall time {result.WallTime.TotalMinutes:F1} min)");
            return 0;
        }));
        return cmd;
    }

    static string BaseModelCard(string[] argv, PretrainOptions o, ShapesWorld w, long unetParams, long textParams,
        DiffusionPretrainer.Result r, WorldEvalFigures f, IReadOnlyList<long> seeds)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# ShapesWorld base model (FocusNFixPixelPipeline)");
        sb.AppendLine();
        sb.AppendLine("A pixel-space text-to-image model in the diffusers folder layout: UNet2DConditionModel (3 -> 3 channels, " +
            $"{w.Spec.ImageSize}x{w.Spec.ImageSize}), CLIPTextModel trained from scratch with the real CLIP tokenizer, DDIM scheduler " +
            "(linear betas, trailing spacing, x0 clipping). Trained on rendered ShapesWorld scenes of the train split, which carry " +
            "the hazard and glitch defects at the world's rates, so the model reproduces them.");
        sb.AppendLine();
        sb.AppendLine("## Training");
        sb.AppendLine($"- command: `fnf {string.Join(" ", argv.Skip(1))}`");
        sb.AppendLine($"- seed {o.Seed}; {o.Steps} steps x batch {o.BatchSize} = {(long)o.Steps * o.BatchSize:N0} freshly rendered scenes (train split: {PromptSplits.Prompts(w.Spec, Split.Train).Count} listed prompts, scenes drawn from the train combinations)");
        sb.AppendLine($"- AdamW lr {o.LearningRate} (warmup {o.WarmupSteps}), weight decay {o.WeightDecay}, grad clip {o.GradClipNorm}, EMA {o.EmaDecay} (saved weights are the EMA), prompt dropout {o.UncondProbability}");
        sb.AppendLine($"- parameters: UNet {unetParams:N0}, text encoder {textParams:N0}");
        sb.AppendLine($"- final smoothed loss {r.FinalLoss:F4}; wall time {r.WallTime.TotalMinutes:F1} min on {Environment.ProcessorCount} CPU cores ({get_num_threads()} torch threads)");
        sb.AppendLine();
        sb.AppendLine("## Quality (oracle, held-out test prompts)");
        sb.AppendLine($"Sampling: DDIM {BaseModelRecipe.DefaultSteps} steps, guidance {BaseModelRecipe.DefaultGuidance}, seeds {string.Join(", ", seeds)} for each of the {PromptSplits.Prompts(w.Spec, Split.Test).Count} test prompts. " +
            $"Reproduce with `fnf world eval --model {DefaultModels}/base --seeds {seeds.Count}`.");
        sb.AppendLine();
        sb.Append(f.ToMarkdown());
        return sb.ToString();
    }

    static Command Eval()
    {
        var world = WorldOption();
        var model = new Option<string>("--model") { Description = "Pipeline folder", DefaultValueFactory = _ => Path.Combine(DefaultModels, "base") };
        var lora = new Option<string?>("--lora") { Description = "LoRA file to apply" };
        var loraScale = new Option<double>("--lora-scale") { Description = "LoRA scale", DefaultValueFactory = _ => 1.0 };
        var split = new Option<string>("--split") { Description = "Prompt split", DefaultValueFactory = _ => "test" };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per prompt (1000, 1001, ...)", DefaultValueFactory = _ => 2 }.AtLeast(1);
        var steps = CommonOptions.SamplingSteps();
        var guidance = CommonOptions.Guidance();
        var threads = CommonOptions.Threads();
        var cmd = new Command("eval", "Sample prompts x seeds and print the oracle's figures (colour-in-place accuracy, hazard and glitch rates)")
        {
            world, model, lora, loraScale, split, seeds, steps, guidance, threads,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            var w = LoadWorld(pr.GetValue(world));
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
