using System.Globalization;
using FocusNFix.Evaluation;
using FocusNFix.Pipelines;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;

namespace FocusNFix.Experiments;

/// <summary>
/// One point of a sweep's grid: a method and its settings. A trained setting is run once per training seed; a
/// sampling setting (SLD, negative prompt) changes only how the base model samples and has no training seed.
/// </summary>
public sealed record SweepSetting(string Method, double? Lambda = null, double? LearningRate = null, string? SldPreset = null,
    double? SldScale = null, double? GuidanceScale = null)
{
    public static readonly string[] TrainedMethods = { "focus-n-fix", "global", "draft", "refl" };
    public const string SldMethod = "sld", NegativePromptMethod = "negative-prompt";

    public bool Trained => TrainedMethods.Contains(Method);

    /// <summary>A name usable as a folder and as an evaluation method: method and settings, invariant-culture numbers.</summary>
    public string Id => Method + string.Concat(Parts().Select(p => "_" + p.Key + p.Value));

    /// <summary>The settings as a person reads them ("lambda=1, lr=0.002").</summary>
    public string Label => string.Join(", ", Parts().Select(p => $"{p.Key}={p.Value}"));

    /// <summary>A sampling setting as the evaluation's variant, steering away from <paramref name="concept"/>; named <paramref name="name"/> or its <see cref="Id"/>.</summary>
    public SamplingVariant ToVariant(string concept, string? name = null) => Method switch
    {
        SldMethod => new SamplingVariant(name ?? Id)
        {
            GuidanceScale = GuidanceScale,
            Sld = new SldOptions(concept, SldPreset is { } p ? SldSettings.Preset(p) : SldSettings.Medium with { GuidanceScale = SldScale!.Value }),
        },
        NegativePromptMethod => new SamplingVariant(name ?? Id) { GuidanceScale = GuidanceScale, NegativePrompt = concept },
        _ => throw new ArgumentException($"{Id} is a trained setting"),
    };

    IEnumerable<KeyValuePair<string, string>> Parts()
    {
        static string N(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
        if (Lambda is double l) yield return new("lambda", N(l));
        if (LearningRate is double lr) yield return new("lr", N(lr));
        if (SldPreset is string p) yield return new("preset", p.ToLowerInvariant());
        if (SldScale is double s) yield return new("scale", N(s));
        if (GuidanceScale is double g) yield return new("guidance", N(g));
    }
}

/// <summary>
/// A sweep expanded: its settings in a fixed order, each trained setting's run folders (one per training seed) and
/// training configs (the demo's, with the setting's lambda, learning rate and draft mode), and the sampling variants.
/// </summary>
public sealed class SweepPlan
{
    public SweepConfig Config { get; }
    public DemoPlan Demo { get; }
    public IReadOnlyList<SweepSetting> Settings { get; }

    public SweepPlan(SweepConfig config)
    {
        config.Validate("sweep");
        Config = config;
        Demo = new DemoPlan(config.Models, config.OutputDir, config.Defect, config.Steps, config.EvalSeeds) { Device = config.Device, Dtype = config.Dtype };
        var settings = new List<SweepSetting>();
        void Trained(string method, TrainedGrid? grid)
        {
            if (grid is null) return;
            foreach (var lr in grid.LearningRates)
                if (grid.Lambdas.Count == 0) settings.Add(new SweepSetting(method, LearningRate: lr));
                else settings.AddRange(grid.Lambdas.Select(l => new SweepSetting(method, Lambda: l, LearningRate: lr)));
        }
        Trained("focus-n-fix", config.FocusNFix);
        Trained("global", config.Global);
        Trained("draft", config.Draft);
        Trained("refl", config.Refl);
        if (config.Sld is { } sld)
        {
            settings.AddRange(sld.Presets.Select(p => new SweepSetting(SweepSetting.SldMethod, SldPreset: p.ToLowerInvariant(), GuidanceScale: sld.GuidanceScale)));
            settings.AddRange(sld.Scales.Select(s => new SweepSetting(SweepSetting.SldMethod, SldScale: s, GuidanceScale: sld.GuidanceScale)));
        }
        if (config.NegativePrompt is { } neg)
            settings.AddRange(neg.GuidanceScales.Select(g => new SweepSetting(SweepSetting.NegativePromptMethod, GuidanceScale: g)));
        Settings = settings;
    }

    public Split Split => PromptSplits.ParseSplit(Config.Split);
    public string RunsDir => Config.RunsFrom ?? OwnRunsDir;
    string OwnRunsDir => Path.Combine(Config.OutputDir, "runs");
    public string EvalsDir => Path.Combine(Config.OutputDir, "evals");
    public string RunDir(SweepSetting s, long seed) => Path.Combine(RunsDir, $"{s.Id}_seed{seed}");
    public string EvalDir(SweepSetting s) => Path.Combine(EvalsDir, s.Id);
    /// <summary>Every setting's evaluation reads the base model's images from here after the first has sampled them.</summary>
    public string BaseImageCache => Path.Combine(EvalsDir, "base-images");
    /// <summary>DRaFT-K methods share one cache of the originals; ReFL caches its own (the x0 prediction at step T-K).</summary>
    public string CacheDir(SweepSetting s) => Path.Combine(Config.OutputDir, s.Method == "refl" ? "originals-refl" : "originals");

    public const string ConfigFile = "sweep.json";

    /// <summary>What the sweep owns in its folder: only these are deleted by --overwrite.</summary>
    public IEnumerable<string> OwnedPaths => new[]
    {
        OwnRunsDir, EvalsDir, Path.Combine(Config.OutputDir, "originals"), Path.Combine(Config.OutputDir, "originals-refl"),
        Path.Combine(Config.OutputDir, ConfigFile), Path.Combine(Config.OutputDir, SweepReport.JsonFile),
        Path.Combine(Config.OutputDir, SweepReport.MarkdownFile), Path.Combine(Config.OutputDir, SweepReport.FullMarkdownFile),
        Path.Combine(Config.OutputDir, SweepReport.PlotFolder),
    };

    public TrainingConfig TrainingConfig(SweepSetting s, long seed)
    {
        if (!s.Trained) throw new ArgumentException($"{s.Id} is not a trained setting", nameof(s));
        var cfg = Demo.TrainingConfig(s.Method);
        cfg.Seed = seed;
        cfg.OutputDir = RunDir(s, seed);
        cfg.Optimizer.LearningRate = s.LearningRate!.Value;
        cfg.Constraint.Lambda = s.Lambda ?? 0;
        // The sweep compares end points; intermediate sample grids would cost a sampling pass per 20 steps per run.
        cfg.Train.SampleEvery = 0;
        cfg.Train.CacheDir = CacheDir(s);
        if (Config.PoolLimit is int pool) cfg.Prompts.Limit = pool;
        return cfg;
    }

    /// <summary>
    /// The test sweep of a finished val sweep: its config with split test and, per method, only the setting its
    /// report chose. Refused for a sweep that was not on val or has no report yet.
    /// </summary>
    public static SweepConfig FinalFrom(string valFolder)
    {
        var configPath = Path.Combine(valFolder, ConfigFile);
        var reportPath = Path.Combine(valFolder, SweepReport.JsonFile);
        var val = SweepConfig.Load(configPath);
        if (val.Split != "val") throw new InvalidInputException($"{configPath}: split = \"{val.Split}\": expected a val sweep to choose settings from");
        if (!File.Exists(reportPath)) throw new InvalidInputException($"{reportPath}: not found; expected a finished val sweep (run it to the end, or with --resume)");
        var report = IO.StrictJson.Deserialize<SweepReport>(IO.InputFile.ReadAllText(reportPath, "sweep report"), reportPath, SweepConfig.Json);
        var settings = new SweepPlan(val).Settings;
        SweepSetting Chosen(string method)
        {
            if (!report.Chosen.TryGetValue(method, out var id)) throw new InvalidInputException($"{reportPath}: chosen has no setting for {method}; expected one per method of {configPath}");
            return settings.FirstOrDefault(x => x.Id == id) ?? throw new InvalidInputException($"{reportPath}: chosen setting '{id}' is not in the grid of {configPath}");
        }
        TrainedGrid? Trained(TrainedGrid? grid, string method)
        {
            if (grid is null) return null;
            var c = Chosen(method);
            return new TrainedGrid { Lambdas = c.Lambda is double l && method != "draft" ? new() { l } : new(), LearningRates = new() { c.LearningRate!.Value } };
        }
        var test = SweepConfig.Load(configPath);
        test.Split = "test";
        test.OutputDir = valFolder.TrimEnd('/', '\\') + "-test";
        test.RunsFrom = Path.GetFullPath(Path.Combine(valFolder, "runs"));
        test.FocusNFix = Trained(val.FocusNFix, "focus-n-fix");
        test.Global = Trained(val.Global, "global");
        test.Draft = Trained(val.Draft, "draft");
        test.Refl = Trained(val.Refl, "refl");
        if (val.Sld is not null)
        {
            var c = Chosen(SweepSetting.SldMethod);
            test.Sld = new SldGrid
            {
                Presets = c.SldPreset is { } p ? new() { p } : new(), Scales = c.SldScale is double sc ? new() { sc } : new(), GuidanceScale = c.GuidanceScale!.Value,
            };
        }
        if (val.NegativePrompt is not null)
            test.NegativePrompt = new NegativePromptGrid { GuidanceScales = new() { Chosen(SweepSetting.NegativePromptMethod).GuidanceScale!.Value } };
        test.Validate(configPath);
        return test;
    }

    public SamplingVariant Variant(SweepSetting s) => s.ToVariant(Config.Concept!);
}
