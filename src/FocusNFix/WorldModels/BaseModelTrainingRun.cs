using FocusNFix.IO;
using FocusNFix.Models;
using FocusNFix.Pipelines;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;
using static TorchSharp.torch;

namespace FocusNFix.WorldModels;

/// <summary>
/// <c>fnf world train-base</c>: trains the world's base text-to-image model on rendered scenes, writes the pipeline
/// folder, evaluates it with the oracle on the test prompts and writes its model card. Everything that can be refused
/// (options, an occupied output, a different world beside it, the tokenizer) is refused before training starts.
/// </summary>
public static class BaseModelTrainingRun
{
    public sealed record Options
    {
        /// <summary>Pipeline folder to write (replaced as a whole, and only with <see cref="Overwrite"/>).</summary>
        public string OutDir { get; init; } = Path.Combine(WorldFolder.DefaultOut, "base");
        /// <summary>world.json to train on; null: <see cref="WorldFolder.LoadWorld"/>'s default.</summary>
        public string? WorldPath { get; init; }
        /// <summary>Folder with the CLIP tokenizer files (vocab.json, merges.txt).</summary>
        public string TokenizerDir { get; init; } = "../shared/golden/clip_tokenizer";
        public int Steps { get; init; } = 2500;
        public int BatchSize { get; init; } = 32;
        public double LearningRate { get; init; } = 1e-3;
        public long Seed { get; init; }
        /// <summary>Seeds per test prompt in the final evaluation (1000, 1001, ...).</summary>
        public int EvalSeeds { get; init; } = 2;
        public string LogDir { get; init; } = "runs/world-base";
        /// <summary>Continue from this pipeline folder's weights; its model card becomes the new card's history.</summary>
        public string? InitFrom { get; init; }
        public bool Overwrite { get; init; }
        /// <summary>How the run was started, for the model card.</summary>
        public string CommandLine { get; init; } = "fnf world train-base";

        internal void Validate()
        {
            if (Steps < 1) throw new InvalidInputException($"--steps {Steps}: expected at least 1");
            if (BatchSize < 1) throw new InvalidInputException($"--batch {BatchSize}: expected at least 1");
            if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new InvalidInputException($"--lr {LearningRate}: expected a positive number");
            if (EvalSeeds < 1) throw new InvalidInputException($"--eval-seeds {EvalSeeds}: expected at least 1");
        }
    }

    public sealed record Result(string ModelDir, WorldEvalFigures Figures, string Card, TimeSpan WallTime);

    /// <param name="progress">(phase, done, total, status).</param>
    public static Result Run(Options o, Action<string, int, int, string?>? progress = null)
    {
        o.Validate();
        var w = WorldFolder.LoadWorld(o.WorldPath);
        CheckOutput(o.OutDir, o.Overwrite);
        bool addWorld = WorldFolder.CheckWorldBeside(o.OutDir, w.Spec);
        var tok = ClipTokenizer.FromFolder(o.TokenizerDir);
        var po = new PretrainOptions { Steps = o.Steps, BatchSize = o.BatchSize, LearningRate = o.LearningRate, Seed = o.Seed, PredictionType = BaseModelRecipe.PredictionType };
        manual_seed(po.Seed);
        using var unet = BaseModelRecipe.NewUNet(w.Spec.ImageSize);
        using var text = BaseModelRecipe.NewTextEncoder();
        var schedule = BaseModelRecipe.NewScheduler();
        string? history = null;
        if (o.InitFrom is { } init)
        {
            StateDict.LoadFile(unet, WeightFiles.Find(Path.Combine(init, "unet"), "diffusion_pytorch_model"));
            StateDict.LoadFile(text, WeightFiles.Find(Path.Combine(init, "text_encoder"), "model"));
            var oldCard = Path.Combine(init, ModelCards.FileName);
            history = File.Exists(oldCard) ? File.ReadAllText(oldCard) : null;
        }
        long unetParams = unet.parameters().Sum(p => p.numel()), textParams = text.parameters().Sum(p => p.numel());
        using var log = new TensorBoardLog(o.LogDir);
        // With the world's defect captions off (share 0) each example is exactly w.Generate(seed, Split.Train) with its prompt.
        var captioned = new CaptionedSceneSampler(w);
        (Tensor, IReadOnlyList<string>) Batch(int step)
        {
            var examples = Enumerable.Range(0, po.BatchSize).Select(k => captioned.Draw(po.Seed * 1_000_003 + (long)step * po.BatchSize + k, Split.Train)).ToList();
            var (images, hz, gl) = WorldImage.ToBatch(examples.Select(e => e.Scene).ToList());
            hz.Dispose(); gl.Dispose();
            return (images, examples.Select(e => e.Caption).ToList());
        }
        var phase = $"training the base model (UNet {unetParams:N0} + text encoder {textParams:N0} parameters)";
        var result = DiffusionPretrainer.Train(unet, text, tok, schedule.AlphasCumprod, Batch, po, (d, t, loss) => progress?.Invoke(phase, d, t, $"loss {loss:F4}"), log);
        BaseModelRecipe.Save(o.OutDir, w.Spec.ImageSize, result.UnetWeights, result.TextWeights, o.TokenizerDir);
        if (addWorld) WorldFolder.WriteWorldBeside(o.OutDir, w.Spec);

        using var pipe = TextToImagePipeline.Load(o.OutDir);
        var prompts = PromptSplits.Prompts(w.Spec, Split.Test);
        var seeds = Enumerable.Range(0, o.EvalSeeds).Select(i => 1000L + i).ToList();
        var evalPhase = $"evaluating on {prompts.Count} test prompts x {seeds.Count} seeds";
        var verdicts = WorldEvaluation.Run(pipe, w, prompts, seeds, BaseModelRecipe.DefaultSteps, BaseModelRecipe.DefaultGuidance,
            progress: (d, t) => progress?.Invoke(evalPhase, d, t, null));
        var figures = WorldEvalFigures.From(verdicts);
        var card = ModelCards.WithHistory(ModelCards.BaseModel(o.CommandLine, po, w, unetParams, textParams, result, figures, seeds, o.OutDir), history);
        AtomicFile.WriteAllText(Path.Combine(o.OutDir, ModelCards.FileName), card);
        return new Result(o.OutDir, figures, card, result.WallTime);
    }

    /// <summary>
    /// The pipeline folder is replaced as a whole, so it must be free, or (with overwrite) a pipeline folder: a
    /// mistyped --out never deletes a folder of other things.
    /// </summary>
    const string ModelIndex = "model_index.json";

    static void CheckOutput(string dir, bool overwrite)
    {
        if (File.Exists(dir)) throw new InvalidInputException($"{dir}: is a file; --out names the pipeline folder to write");
        OutputPaths.RefuseExisting(new[] { dir }, overwrite);
        if (OutputPaths.Occupied(dir) && !File.Exists(Path.Combine(dir, ModelIndex)))
            throw new InvalidInputException($"{dir}: not a pipeline folder (no {ModelIndex}), so --overwrite does not replace it; choose another --out");
    }
}
