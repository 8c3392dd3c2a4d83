using System.Text;
using FocusNFix.ShapesWorld;
using static TorchSharp.torch;

namespace FocusNFix.WorldModels;

/// <summary>
/// The MODEL_CARD.md of each ShapesWorld model: what it is, the command, seed, data and wall time that made it, and
/// its measured quality, so a bundled model can be judged and reproduced from its folder alone.
/// </summary>
public static class ModelCards
{
    public const string FileName = "MODEL_CARD.md";

    public static string BaseModel(string commandLine, PretrainOptions o, ShapesWorldBenchmark w, long unetParams, long textParams,
        DiffusionPretrainer.Result r, WorldEvalFigures f, IReadOnlyList<long> seeds, string modelDir)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# ShapesWorld base model (FocusNFixPixelPipeline)");
        sb.AppendLine();
        sb.AppendLine("A pixel-space text-to-image model in the diffusers folder layout: UNet2DConditionModel (3 -> 3 channels, " +
            $"{w.Spec.ImageSize}x{w.Spec.ImageSize}), CLIPTextModel trained from scratch with the real CLIP tokenizer, DDIM scheduler " +
            "(linear betas, trailing spacing, x0 clipping). Trained on rendered ShapesWorld scenes of the train split, which carry " +
            $"{DefectsCarried(w.Spec)} at the world's rates, so the model reproduces them.");
        sb.AppendLine();
        sb.AppendLine("## Training");
        sb.AppendLine($"- command: `{commandLine}`");
        sb.AppendLine($"- seed {o.Seed}; {o.Steps} steps x batch {o.BatchSize} = {(long)o.Steps * o.BatchSize:N0} freshly rendered scenes (train split: {PromptSplits.Prompts(w.Spec, Split.Train).Count} listed prompts, scenes drawn from the train combinations)");
        sb.AppendLine($"- AdamW lr {o.LearningRate} (warmup {o.WarmupSteps}), weight decay {o.WeightDecay}, grad clip {o.GradClipNorm}, EMA {o.EmaDecay} (saved weights are the EMA), prompt dropout {o.UncondProbability}");
        sb.AppendLine($"- parameters: UNet {unetParams:N0}, text encoder {textParams:N0}");
        sb.AppendLine($"- final smoothed loss {r.FinalLoss:F4}; wall time {r.WallTime.TotalMinutes:F1} min on {Environment.ProcessorCount} CPU cores ({get_num_threads()} torch threads)");
        sb.AppendLine();
        sb.AppendLine("## Quality (oracle, held-out test prompts)");
        sb.AppendLine($"Sampling: DDIM {BaseModelRecipe.DefaultSteps} steps, guidance {BaseModelRecipe.DefaultGuidance}, seeds {string.Join(", ", seeds)} for each of the {PromptSplits.Prompts(w.Spec, Split.Test).Count} test prompts. " +
            $"Reproduce with `fnf world eval --model {modelDir} --seeds {seeds.Count}`.");
        sb.AppendLine();
        sb.Append(f.ToMarkdown());
        return sb.ToString();
    }

    /// <summary>The defects a world's training scenes carry, with their rates and how often captions name them.</summary>
    static string DefectsCarried(WorldSpec spec)
    {
        var kinds = spec.DefectKinds.Where(k => k != DefectKind.Rot || spec.Rot!.Rate > 0).Select(k => k switch
        {
            DefectKind.Hazard => "hazard (by shape: " + string.Join(", ", spec.HazardRateByShape.Select(kv => $"{kv.Key} {kv.Value:0.##}")) + ")",
            DefectKind.Glitch => $"glitch ({spec.GlitchRate:0.##})",
            _ => $"rot ({spec.Rot!.Rate:0.##})",
        }).ToList();
        var text = "the " + string.Join(", ", kinds.Take(kinds.Count - 1)) + (kinds.Count > 1 ? " and " : "") + kinds[^1] + " defects";
        return spec.Captions.ShareOfDefectiveScenes > 0
            ? text + $", with about {spec.Captions.ShareOfDefectiveScenes:P0} of the defective scenes captioned with the defects' phrases (\"{DefectCaptionSpec.Form}\")"
            : text;
    }

    /// <summary>Appends the card of the run a training continued from, one heading level down.</summary>
    public static string WithHistory(string card, string? earlierCard) => earlierCard == null ? card :
        card + "\n## History: the run this one continued from (its weights were the initialisation)\n\n" +
        string.Join("\n", earlierCard.Split('\n').Select(l => l.StartsWith('#') ? "#" + l : l));

    public sealed record RewardQuality(double Auc, double MeanIoU, int Positives, int Count);

    public static string RegionRewardModel(string commandLine, string defect, long parameterCount, RewardModelTraining.Options o,
        long baseSamples, IReadOnlyList<long> trainSeeds, (int Steps, double Guidance) sampling, TimeSpan wallTime,
        RewardQuality onSamples, RewardQuality onRendered)
    {
        var card = new StringBuilder();
        card.AppendLine($"# ShapesWorld region reward model: {defect}");
        card.AppendLine();
        card.AppendLine($"A fully-convolutional network ({parameterCount:N0} parameters) giving a per-pixel probability that a pixel belongs to a {defect} defect (the heatmap), " +
            "and a differentiable image-level reward derived from it (see `RegionRewardModel` for the formula). Trained like RAHF on annotated images: rendered scenes with their exact masks, " +
            "plus base-model samples labelled by the oracle.");
        card.AppendLine();
        card.AppendLine("## Training");
        card.AppendLine($"- command: `{commandLine}`");
        card.AppendLine($"- seed {o.Seed}; {o.Steps} steps x batch {o.BatchSize} ({o.ExtraFraction:P0} of each batch from {baseSamples} base-model samples of the train prompts, seeds {string.Join(", ", trainSeeds)}; the rest freshly rendered, augmented)");
        card.AppendLine($"- base-model samples drawn with DDIM {sampling.Steps} steps, guidance {sampling.Guidance} (the base model's recommended sampling), labelled by the oracle");
        card.AppendLine($"- wall time {wallTime.TotalMinutes:F1} min (including sampling and evaluation)");
        card.AppendLine();
        card.AppendLine("## Quality");
        card.AppendLine("| data | images | with the defect | image-level AUC vs oracle | mean heatmap IoU (threshold 0.5) on images with the defect |");
        card.AppendLine("|---|---|---|---|---|");
        card.AppendLine($"| held-out base-model samples (test prompts x seeds 1000, 1001) | {onSamples.Count} | {onSamples.Positives} | {onSamples.Auc:F4} | {onSamples.MeanIoU:F4} |");
        card.AppendLine($"| rendered test-split scenes | {onRendered.Count} | {onRendered.Positives} | {onRendered.Auc:F4} | {onRendered.MeanIoU:F4} |");
        return card.ToString();
    }

    public static string Judge(string commandLine, JudgeTraining.Options o, TimeSpan wallTime, JudgeEvaluation eval)
    {
        var card = new StringBuilder();
        card.AppendLine("# ShapesWorld alignment judge");
        card.AppendLine();
        card.AppendLine("A small CNN that predicts, per place, the colour and shape of the object there (or none) and the background colour. " +
            "It measures prompt alignment the way a model would; Focus-N-Fix never optimises it.");
        card.AppendLine();
        card.AppendLine("## Training");
        card.AppendLine($"- command: `{commandLine}`");
        card.AppendLine($"- seed {o.Seed}; {o.Steps} steps x batch {o.BatchSize} freshly rendered train-split scenes (augmented like generator samples)");
        card.AppendLine($"- wall time {wallTime.TotalMinutes:F1} min");
        card.AppendLine();
        card.AppendLine("## Quality (1000 rendered test-split scenes)");
        card.AppendLine(eval.ToString());
        return card.ToString();
    }
}
