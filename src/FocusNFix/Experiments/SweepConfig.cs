using System.Globalization;
using System.Text.Json;
using FocusNFix.Evaluation;
using FocusNFix.Pipelines;
using FocusNFix.Training;
using FocusNFix.WorldModels;

namespace FocusNFix.Experiments;

/// <summary>The learning rates (and, for the constrained objectives, the lambdas) one trained method is swept over.</summary>
public sealed class TrainedGrid
{
    public List<double> Lambdas { get; set; } = new();
    public List<double> LearningRates { get; set; } = new();
}

/// <summary>Safe Latent Diffusion settings swept: named presets and/or SLD guidance scales (the medium preset's other settings).</summary>
public sealed class SldGrid
{
    public List<string> Presets { get; set; } = new();
    public List<double> Scales { get; set; } = new();
    /// <summary>Classifier-free guidance scale SLD runs with (SLD needs guidance above 1); default the bundled base model's 1.5.</summary>
    public double GuidanceScale { get; set; } = 1.5;
}

/// <summary>Negative prompting with the defect's phrase, at each classifier-free guidance scale listed (each above 1).</summary>
public sealed class NegativePromptGrid
{
    public List<double> GuidanceScales { get; set; } = new() { 2.0 };
}

/// <summary>
/// How a val sweep chooses each method's setting for the test run: the lowest defect rate among the settings that keep
/// the median PSNR outside the mask at or above <see cref="MinPsnrOutside"/> and the judge's alignment within
/// <see cref="MaxAlignmentDrop"/> of the base model's (equal rates: the higher PSNR outside); when none does, the setting with the highest PSNR outside.
/// </summary>
public sealed class SelectionRule
{
    public double MinPsnrOutside { get; set; } = 35;
    public double MaxAlignmentDrop { get; set; } = 0.05;
}

/// <summary>
/// What <c>fnf sweep</c> runs (sweep.json in its folder): on one defect task of the bundled world, a grid of settings
/// per method, each trained with every training seed on the demo's prompts, sampling and budget, then evaluated on one
/// split (val to choose settings, test once for the final figures). A method left out (null) is not swept.
/// </summary>
public sealed class SweepConfig
{
    public string Models { get; set; } = WorldFolder.Bundled;
    public string OutputDir { get; set; } = "runs/sweep";
    public string Defect { get; set; } = "hazard";
    /// <summary>The prompts the grid is evaluated on: "val" while choosing, "test" once for the final figures.</summary>
    public string Split { get; set; } = "val";
    /// <summary>Only the first N prompts of the split (a quick look; null: all).</summary>
    public int? PromptLimit { get; set; }
    public int EvalSeeds { get; set; } = 2;
    public List<long> TrainSeeds { get; set; } = new() { 0, 1, 2 };
    public int Steps { get; set; } = DemoPlan.DefaultSteps;
    /// <summary>Only the first N training prompts in each run's pool (a quick look; null: the demo's pool).</summary>
    public int? PoolLimit { get; set; }
    /// <summary>The phrase SLD and negative prompting steer away from (e.g. "hazard mark").</summary>
    public string? Concept { get; set; }
    public TrainedGrid? FocusNFix { get; set; }
    public TrainedGrid? Global { get; set; }
    /// <summary>DRaFT: no constraint (lambda 0); only its learning rates are swept.</summary>
    public TrainedGrid? Draft { get; set; }
    /// <summary>Focus-N-Fix with ReFL's single-step gradient window instead of DRaFT-K.</summary>
    public TrainedGrid? Refl { get; set; }
    public SldGrid? Sld { get; set; }
    public NegativePromptGrid? NegativePrompt { get; set; }
    public int BootstrapReplicates { get; set; } = Bootstrap.DefaultReplicates;
    public SelectionRule Selection { get; set; } = new();
    /// <summary>
    /// The runs folder of another sweep whose finished runs this one evaluates instead of training its own (a test
    /// sweep made by --final-from reads the val sweep's runs: training never sees the evaluation split). Never written to.
    /// </summary>
    public string? RunsFrom { get; set; }
    public string Device { get; set; } = "cpu";
    public string Dtype { get; set; } = "float32";

    public static readonly JsonSerializerOptions Json = TrainingConfig.Json;

    /// <summary>
    /// The grid <c>fnf sweep</c> runs without --config: lambda {0.3, 1, 3} for Focus-N-Fix and the global constraint,
    /// DRaFT, and Focus-N-Fix with ReFL's window at lambda 1, all at the demo's learning rate for the defect, with
    /// three training seeds; SLD (its four presets, at the bundled base model's recommended guidance 1.5: more guidance
    /// alone raises the defect rates and erases objects, results/base-sampling-val) and negative prompting (guidance
    /// 1.5, 2, 3) with the defect's phrase from the bundled world.json; evaluated on the val prompts.
    /// </summary>
    public static SweepConfig Default(string defect, string models = WorldFolder.Bundled)
    {
        double lr = new DemoPlan(models, "unused", defect, 1, 1, checkModels: false).TrainingConfig("focus-n-fix").Optimizer.LearningRate;
        return new SweepConfig
        {
            Models = models, Defect = defect, OutputDir = $"runs/sweep-{defect}",
            FocusNFix = new TrainedGrid { Lambdas = new() { 0.3, 1, 3 }, LearningRates = new() { lr } },
            Global = new TrainedGrid { Lambdas = new() { 0.3, 1, 3 }, LearningRates = new() { lr } },
            Draft = new TrainedGrid { LearningRates = new() { lr } },
            Refl = new TrainedGrid { Lambdas = new() { 1 }, LearningRates = new() { lr } },
            Concept = WorldPhrase(defect, models),
            Sld = new SldGrid { Presets = new() { "weak", "medium", "strong", "max" } },
            NegativePrompt = new NegativePromptGrid { GuidanceScales = new() { 1.5, 2, 3 } },
        };
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static SweepConfig Load(string path)
    {
        var c = IO.StrictJson.Deserialize<SweepConfig>(IO.InputFile.ReadAllText(path, "sweep config"), path, Json);
        c.Validate(path);
        return c;
    }

    public void Validate(string source)
    {
        void Fail(string key, object? value, string expected) => throw new InvalidInputException(
            string.Create(CultureInfo.InvariantCulture, $"{source}: {key} = {Show(value)}: expected {expected}"));
        if (string.IsNullOrWhiteSpace(Models)) Fail("models", Models, "the folder of the bundled ShapesWorld models");
        if (string.IsNullOrWhiteSpace(OutputDir)) Fail("output_dir", OutputDir, "a folder path");
        if (Split is not ("val" or "test")) Fail("split", Split, "val (choosing settings) or test (the final figures)");
        if (PoolLimit is < 1) Fail("pool_limit", PoolLimit, "at least 1, or null for the demo's pool");
        if (PromptLimit is < 1) Fail("prompt_limit", PromptLimit, "at least 1, or null for every prompt of the split");
        if (EvalSeeds is < 1 or > 1000) Fail("eval_seeds", EvalSeeds, "1 to 1000 seeds per prompt");
        if (TrainSeeds is null || TrainSeeds.Count == 0) Fail("train_seeds", TrainSeeds, "at least one training seed");
        if (TrainSeeds!.Distinct().Count() != TrainSeeds!.Count) Fail("train_seeds", TrainSeeds, "distinct seeds");
        if (TrainSeeds.Any(s => s < 0)) Fail("train_seeds", TrainSeeds, "non-negative seeds");
        if (Steps is < 1 or > 1_000_000) Fail("steps", Steps, "1 to 1000000 training steps per run");
        if (Selection is null) Fail("selection", null, "an object (min_psnr_outside, max_alignment_drop)");
        if (!double.IsFinite(Selection!.MinPsnrOutside) || Selection.MinPsnrOutside < 0 || Selection.MinPsnrOutside > 200) Fail("selection.min_psnr_outside", Selection.MinPsnrOutside, "a PSNR in dB, 0 to 200");
        if (!double.IsFinite(Selection.MaxAlignmentDrop) || Selection.MaxAlignmentDrop < 0 || Selection.MaxAlignmentDrop > 1) Fail("selection.max_alignment_drop", Selection.MaxAlignmentDrop, "an alignment drop in [0, 1]");
        if (BootstrapReplicates is < 100 or > 100_000) Fail("bootstrap_replicates", BootstrapReplicates, "100 to 100000");
        foreach (var (name, grid, needsLambda) in new[] { ("focus_n_fix", FocusNFix, true), ("global", Global, true), ("draft", Draft, false), ("refl", Refl, true) })
        {
            if (grid is null) continue;
            if (grid.LearningRates is null || grid.LearningRates.Count == 0) Fail($"{name}.learning_rates", grid.LearningRates, "at least one learning rate");
            foreach (var lr in grid.LearningRates!)
                if (!double.IsFinite(lr) || lr <= 0 || lr > 1) Fail($"{name}.learning_rates", lr, "a finite rate in (0, 1]");
            if (grid.Lambdas is null) Fail($"{name}.lambdas", null, "a list");
            if (needsLambda && grid.Lambdas!.Count == 0) Fail($"{name}.lambdas", grid.Lambdas, "at least one lambda");
            if (!needsLambda && grid.Lambdas!.Count > 0) Fail($"{name}.lambdas", grid.Lambdas, "none: DRaFT has no constraint (lambda 0)");
            foreach (var l in grid.Lambdas!)
                if (!double.IsFinite(l) || l < 0 || l > 1e6) Fail($"{name}.lambdas", l, "a finite lambda in [0, 1e6]");
            if (grid.Lambdas.Distinct().Count() != grid.Lambdas.Count || grid.LearningRates.Distinct().Count() != grid.LearningRates.Count)
                Fail(name, null, "distinct lambdas and learning rates");
        }
        if (Sld is not null)
        {
            if (Sld.Presets is null || Sld.Scales is null || Sld.Presets.Count + Sld.Scales.Count == 0) Fail("sld", null, "at least one preset or scale");
            foreach (var p in Sld.Presets!) SldSettings.Preset(p, $"{source}: sld.presets");
            foreach (var sc in Sld.Scales!)
                if (!double.IsFinite(sc) || sc <= 1 || sc > 1e5) Fail("sld.scales", sc, "a finite SLD scale above 1 (it is off at 1 and below) and at most 1e5");
            if (!double.IsFinite(Sld.GuidanceScale) || Sld.GuidanceScale <= 1 || Sld.GuidanceScale > 100) Fail("sld.guidance_scale", Sld.GuidanceScale, "a guidance scale above 1 (SLD needs classifier-free guidance) and at most 100");
        }
        if (NegativePrompt is not null)
        {
            if (NegativePrompt.GuidanceScales is null || NegativePrompt.GuidanceScales.Count == 0) Fail("negative_prompt.guidance_scales", null, "at least one scale");
            foreach (var g in NegativePrompt.GuidanceScales!)
                if (!double.IsFinite(g) || g <= 1 || g > 100) Fail("negative_prompt.guidance_scales", g, "a guidance scale above 1 (a negative prompt acts only with guidance) and at most 100");
        }
        if ((Sld is not null || NegativePrompt is not null) && string.IsNullOrWhiteSpace(Concept))
            Fail("concept", Concept, "the defect's phrase that SLD and the negative prompt steer away from");
        if (FocusNFix is null && Global is null && Draft is null && Refl is null && Sld is null && NegativePrompt is null)
            Fail("methods", null, "at least one of focus_n_fix, global, draft, refl, sld, negative_prompt");
    }

    /// <summary>The bundled world's caption phrase for the defect ("a hazard mark"): the concept the training-free baselines steer away from.</summary>
    static string WorldPhrase(string defect, string models)
    {
        var world = ShapesWorld.WorldSpec.Load(Path.Combine(models, ShapesWorld.WorldSpec.FileName));
        var kind = ShapesWorld.DefectKindNames.Parse(defect, "--defect");
        return world.Captions.Phrases.TryGetValue(kind, out var phrase) ? phrase
            : throw new InvalidInputException($"{Path.Combine(models, ShapesWorld.WorldSpec.FileName)}: defect_captions.phrases has no phrase for {defect}; write the grid with --write-config and set \"concept\"");
    }

    static string Show(object? value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        System.Collections.IEnumerable e => "[" + string.Join(", ", e.Cast<object>().Select(v => Convert.ToString(v, CultureInfo.InvariantCulture))) + "]",
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "?",
    };
}
