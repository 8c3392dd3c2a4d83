using System.Text.Json;
using FocusNFix.Evaluation;
using FocusNFix.IO;
using FocusNFix.Training;

namespace FocusNFix.Experiments;

/// <summary>One evaluated image of a sweep: its setting, training seed (null for a sampling setting), prompt, evaluation seed and figures.</summary>
public sealed class SweepRow
{
    public string Setting { get; set; } = "";
    public long? TrainSeed { get; set; }
    public int PromptIndex { get; set; }
    public long EvalSeed { get; set; }
    public Dictionary<string, double> Metrics { get; set; } = new();
}

/// <summary>
/// One run of <c>fnf sweep</c>: every trained setting of a <see cref="SweepPlan"/> trained once per training seed
/// (one after the other, each a normal run folder), every setting evaluated on the plan's split, then the report.
/// Interrupted at any point, <c>--resume</c> continues: finished runs are kept, unfinished ones continue from their
/// newest checkpoint, and a setting whose figures (figures.json, written last and atomically) exist is not evaluated
/// again. Resuming with a different sweep.json is refused: its runs would not be the grid the report claims.
/// </summary>
public sealed class SweepRun
{
    public const string FiguresFile = "figures.json";
    const string BaseSetting = Evaluator.BaseMethod;

    public SweepPlan Plan { get; }
    readonly EarlierOutput _earlier;

    /// <summary>
    /// Which part of the grid this process works on (<c>fnf sweep --shard i/n</c>): setting k (in grid order, the
    /// training-free settings one by one after the trained settings) belongs to shard k mod n, which trains all its seeds
    /// and evaluates it. Shards share the folder (one file system); when all are done, an unsharded --resume finds every
    /// run and figure cached and writes the report, identical to an unsharded sweep's.
    /// </summary>
    public EvalShard Shard { get; }

    public SweepRun(SweepPlan plan, EarlierOutput earlier, EvalShard? shard = null)
    {
        Plan = plan;
        Shard = shard ?? EvalShard.Whole;
        // Shards start side by side in one folder: each continues whatever the others have begun.
        if (!Shard.IsWhole && earlier == EarlierOutput.Refuse) earlier = EarlierOutput.Resume;
        if (!Shard.IsWhole && earlier == EarlierOutput.Overwrite)
            throw new InvalidInputException($"--shard {Shard} with --overwrite: expected no --overwrite for a shard (it would delete the other shards' work); clear the folder with an unsharded --overwrite first");
        _earlier = earlier;
        var configPath = Path.Combine(plan.Config.OutputDir, SweepPlan.ConfigFile);
        var occupied = plan.OwnedPaths.Where(OutputPaths.Occupied).ToList();
        if (occupied.Count > 0)
        {
            if (earlier == EarlierOutput.Refuse)
                throw new InvalidInputException($"{occupied[0]}: an earlier sweep is in {plan.Config.OutputDir}; pass --resume to continue it, --overwrite to start over, or choose another output folder");
            if (earlier == EarlierOutput.Resume)
            {
                // A shard may find the folder begun by another shard that has not written sweep.json yet.
                if (!File.Exists(configPath))
                {
                    if (Shard.IsWhole)
                        throw new InvalidInputException($"{configPath}: not found, so the sweep's files in {plan.Config.OutputDir} cannot be matched to this grid; pass --overwrite to start over");
                }
                else if (SweepConfig.Load(configPath).ToJson() != plan.Config.ToJson())
                    throw new InvalidInputException($"{configPath}: the earlier sweep had other settings than this one; resume it with that file as --config, or pass --overwrite to start over");
            }
            else
                foreach (var path in occupied)
                {
                    if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                    else File.Delete(path);
                }
        }
        OutputFolder.Create(plan.Config.OutputDir, "sweep output folder");
        AtomicFile.WriteAllText(configPath, plan.Config.ToJson() + "\n");
    }

    /// <summary>Trains every trained setting with every training seed, skipping finished runs.</summary>
    /// <param name="train">trains one config (continuing its run folder when the flag says so); the CLI passes its trainer with progress bars.</param>
    /// <param name="announce">told "[i/n] setting, seed" before each run.</param>
    public void TrainAll(Func<TrainingConfig, bool, string> train, Action<string>? announce = null)
    {
        var jobs = Plan.Settings.Where(s => s.Trained && Mine(s)).SelectMany(s => Plan.Config.TrainSeeds.Select(seed => (s, seed))).ToList();
        for (int i = 0; i < jobs.Count; i++)
        {
            var (setting, seed) = jobs[i];
            var cfg = Plan.TrainingConfig(setting, seed);
            // Another sweep's runs are only read, and the evaluation reads nothing but the final LoRA: a results folder
            // may keep only that file with its config and log.
            if (Plan.Config.RunsFrom != null ? File.Exists(Path.Combine(cfg.OutputDir, FocusNFixTrainer.FinalPeftName)) : RunFolder.IsFinished(cfg.OutputDir)) continue;
            if (Plan.Config.RunsFrom != null)
                throw new InvalidInputException($"{cfg.OutputDir}: not a finished run; this sweep evaluates the runs of {Plan.Config.RunsFrom} (runs_from) and never trains into another sweep's folder: finish that sweep first (--resume)");
            announce?.Invoke($"[{i + 1}/{jobs.Count}] {setting.Method} {setting.Label}, training seed {seed}");
            train(cfg, RunFolder.HoldsRun(cfg.OutputDir));
        }
    }

    /// <summary>Evaluates every setting not evaluated yet, then reads every setting's figures; call after <see cref="TrainAll"/>.</summary>
    public List<SweepRow> EvaluateAll(Action<string, int, int>? progress = null)
    {
        var rows = new List<SweepRow>();
        bool haveBase = false;
        // Every evaluation samples the same base images; one copy of their figures is kept.
        void Add(List<SweepRow> found)
        {
            rows.AddRange(found.Where(r => r.Setting != BaseSetting || !haveBase));
            haveBase |= found.Any(r => r.Setting == BaseSetting);
        }
        foreach (var setting in Plan.Settings.Where(s => s.Trained && Mine(s)))
        {
            var dir = Plan.EvalDir(setting);
            var loras = Plan.Config.TrainSeeds.Select(seed => ($"seed{seed}", Path.Combine(Plan.RunDir(setting, seed), FocusNFixTrainer.FinalPeftName))).ToList();
            foreach (var (_, lora) in loras)
                if (!File.Exists(lora)) throw new InvalidInputException($"{lora}: not found; the run of {setting.Id} did not finish (run the sweep again with --resume)");
            Add(Figures(dir, () =>
            {
                var result = Plan.Demo.EvaluateOn(Plan.Split, loras, Array.Empty<SamplingVariant>(), new Dictionary<string, string>(), dir, Plan.Config.PromptLimit,
                    (what, d, t) => progress?.Invoke($"{setting.Id}: {what}", d, t), baseImageCache: Plan.BaseImageCache);
                return result.Images.Select(im => new SweepRow
                {
                    Setting = im.Method == Evaluator.BaseMethod ? BaseSetting : setting.Id,
                    TrainSeed = im.Method == Evaluator.BaseMethod ? null : long.Parse(im.Method["seed".Length..], System.Globalization.CultureInfo.InvariantCulture),
                    PromptIndex = im.PromptIndex, EvalSeed = im.Seed, Metrics = im.Metrics,
                }).ToList();
            }));
        }
        // Each training-free setting is its own unit: one SLD setting costs as much as a trained setting's evaluation
        // (three model calls per step), so seven of them in one unit made one shard run two hours after the others.
        foreach (var setting in Plan.Settings.Where(s => !s.Trained && Mine(s)))
        {
            var dir = Plan.EvalDir(setting);
            Add(Figures(dir, () =>
            {
                var result = Plan.Demo.EvaluateOn(Plan.Split, Array.Empty<(string, string)>(), new[] { Plan.Variant(setting) }, new Dictionary<string, string>(),
                    dir, Plan.Config.PromptLimit, (what, d, t) => progress?.Invoke($"{setting.Id}: {what}", d, t), baseImageCache: Plan.BaseImageCache);
                return result.Images.Select(im => new SweepRow { Setting = im.Method == Evaluator.BaseMethod ? BaseSetting : setting.Id, PromptIndex = im.PromptIndex, EvalSeed = im.Seed, Metrics = im.Metrics }).ToList();
            }));
        }
        return rows;
    }

    /// <summary>Whether <paramref name="s"/> is this shard's: its unit is its index among the trained settings, then the training-free settings follow in grid order.</summary>
    public bool Mine(SweepSetting s)
    {
        var units = Plan.Settings.Where(x => x.Trained).Concat(Plan.Settings.Where(x => !x.Trained)).ToList();
        return units.IndexOf(s) % Shard.Count == Shard.Index;
    }

    /// <summary>The figures of one evaluation folder: read when complete, else (re)computed from scratch and written last.</summary>
    static List<SweepRow> Figures(string dir, Func<List<SweepRow>> evaluate)
    {
        var path = Path.Combine(dir, FiguresFile);
        if (File.Exists(path))
            return StrictJson.Deserialize<List<SweepRow>>(InputFile.ReadAllText(path, "sweep figures"), path, SweepConfig.Json);
        // A folder without figures is an evaluation that was interrupted: its images are incomplete.
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var rows = evaluate();
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(rows, SweepConfig.Json) + "\n");
        return rows;
    }

    /// <summary>Aggregates the figures and writes sweep-report.json, sweep-report.md and the Pareto plots.</summary>
    public SweepReport Report(List<SweepRow> rows, string commandLine)
    {
        var report = SweepReport.Build(Plan, rows);
        report.Command = commandLine;
        report.Write(Plan.Config.OutputDir);
        return report;
    }
}
