using System.Text.Json;
using FocusNFix.Lora;
using FocusNFix.Training;

namespace FocusNFix.Evaluation;

/// <summary>
/// A training run folder as an evaluation reads it: the resolved <c>config.json</c> the trainer wrote (model, sampling,
/// scheduler, device, dtype, rewards, heatmap, mask), the run's LoRA and its log, so that <c>fnf eval --run</c> measures
/// what training optimised. Relative paths in the config are read from the current directory, as training read them.
/// </summary>
public sealed record TrainedRun(string Name, string Dir, TrainingConfig Config, string LoraPath, string LogPath)
{
    /// <summary>Opens a run folder; <paramref name="name"/> labels its LoRA in the report (default: the run's objective).</summary>
    public static TrainedRun Open(string dir, string? name = null)
    {
        if (!Directory.Exists(dir)) throw new InvalidInputException($"{dir}: training run folder not found");
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath))
            throw new InvalidInputException($"{configPath}: not found; a run folder written by fnf train holds config.json, {FocusNFixTrainer.LogName} and the LoRA files");
        var config = TrainingConfig.Load(configPath);
        if (config.Sampling.Steps is null || config.Sampling.GuidanceScale is null)
            throw new InvalidInputException($"{configPath}: sampling.steps and sampling.guidance_scale are null; the trainer writes the values it used, so this is not a run folder's config");
        if (!Directory.Exists(config.Model))
            throw new InvalidInputException($"{configPath}: model = {config.Model}: folder not found from {Directory.GetCurrentDirectory()} (relative paths are read from the current directory, as training read them); pass --model DIR");
        var lora = RunFolderLora.ResolveFile(dir);
        var log = Path.Combine(dir, FocusNFixTrainer.LogName);
        if (!File.Exists(log)) throw new InvalidInputException($"{log}: not found; the run folder has a config but no training log (did the run finish?)");
        return new TrainedRun(name ?? config.Objective, dir, config, lora, log);
    }

    /// <summary>The settings an evaluation takes from a run, by config key (full model path, JSON for sections).</summary>
    public static IReadOnlyDictionary<string, string> EvaluationSettings(TrainingConfig c) => new Dictionary<string, string>
    {
        ["model"] = Path.GetFullPath(c.Model),
        ["dtype"] = c.Dtype,
        ["sampling.steps"] = Json(c.Sampling.Steps),
        ["sampling.guidance_scale"] = Json(c.Sampling.GuidanceScale),
        ["sampling.eta"] = Json(c.Sampling.Eta),
        ["sampling.scheduler"] = Json(c.Sampling.Scheduler),
        ["rewards"] = Json(c.Rewards),
        ["heatmap"] = Json(c.Heatmap),
        ["mask"] = Json(c.Mask),
    };

    static string Json<T>(T value) => JsonSerializer.Serialize(value, TrainingConfig.Json).Replace("\n", "").Replace("  ", "");

    /// <summary>
    /// Checks that every run agrees with the first on the settings an evaluation takes from them (the device aside),
    /// except the keys in <paramref name="overridden"/>, which the caller sets itself; one evaluation samples every
    /// method with the same settings, so runs trained with different ones are evaluated separately.
    /// </summary>
    public static void CheckAgree(IReadOnlyList<TrainedRun> runs, IReadOnlySet<string> overridden)
    {
        if (runs.Count == 0) return;
        var first = EvaluationSettings(runs[0].Config);
        foreach (var run in runs.Skip(1))
            foreach (var (key, value) in EvaluationSettings(run.Config))
                if (!overridden.Contains(key) && value != first[key])
                    throw new InvalidInputException(
                        $"{Path.Combine(run.Dir, "config.json")}: {key} = {value}, but {Path.Combine(runs[0].Dir, "config.json")} has {first[key]}; " +
                        "one evaluation samples every run with the same settings: evaluate these runs separately, or set this one explicitly");
        var names = runs.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
        if (names != null)
            throw new InvalidInputException($"two runs are named '{names.Key}' ({string.Join(", ", names.Select(r => r.Dir))}); name them with --run NAME=DIR");
    }
}
