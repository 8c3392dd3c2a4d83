using System.Diagnostics;
using FocusNFix.Evaluation;
using FocusNFix.IO;
using FocusNFix.Training;

namespace FocusNFix.Experiments;

/// <summary>What <c>fnf demo</c> and <c>fnf sweep</c> do with an earlier run's files in their output folder.</summary>
public enum EarlierOutput
{
    /// <summary>Stop before any work, naming the first file (the default: a user's files stay theirs).</summary>
    Refuse,
    /// <summary>Continue: each training run from its newest checkpoint (one without any starts afresh), finished work kept.</summary>
    Resume,
    /// <summary>Delete the run's own files (<see cref="DemoPlan.OwnedPaths"/>, <see cref="SweepPlan.OwnedPaths"/>; nothing else) and start over.</summary>
    Overwrite,
}

/// <summary>
/// One run of the ShapesWorld demo (<c>fnf demo</c>): the trained methods of a <see cref="DemoPlan"/> trained with
/// the same prompts, seeds and budget (one after the other, or several at once in their own processes), then one evaluation of all of them, the training-free
/// baselines and the base model on the test prompts, written as the report. Created before any work, so an earlier demo in the folder is dealt with first.
/// </summary>
public sealed class DemoRun
{
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly EarlierOutput _earlier;
    readonly Dictionary<string, string> _logs = new();
    readonly List<(string Method, string Lora)> _loras = new();

    public DemoPlan Plan { get; }

    public DemoRun(DemoPlan plan, EarlierOutput earlier)
    {
        Plan = plan;
        _earlier = earlier;
        var occupied = plan.OwnedPaths.Where(OutputPaths.Occupied).ToList();
        if (occupied.Count == 0) return;
        if (earlier == EarlierOutput.Refuse)
            throw new InvalidInputException($"{occupied[0]}: an earlier demo is in {plan.OutDir}; pass --resume to continue it, --overwrite to start over, or choose another --out");
        if (earlier == EarlierOutput.Overwrite)
            foreach (var path in occupied)
            {
                if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
                else File.Delete(path);
            }
    }


    /// <summary>Trains the plan's methods: one after the other, or <paramref name="jobs"/> at a time.</summary>
    /// <param name="train">trains one config (continuing its run folder when the flag says so) and returns the run folder; the CLI passes its trainer with progress bars, or with jobs > 1 a child process per method.</param>
    /// <param name="jobs">how many methods train at once (each in its own process, which <paramref name="train"/> starts); they
    /// start in <see cref="DemoPlan.TrainingOrder"/>. Each method's result does not depend on this, only on its config (threads included).</param>
    /// <remarks>With --resume a finished method is kept as it is, and an unfinished one (killed at any point after its run
    /// folder was started) continues from its newest checkpoint, or from step 0 when it had none.</remarks>
    public void TrainMethods(Func<TrainingConfig, bool, string> train, int jobs = 1)
    {
        if (jobs < 1) throw new InvalidInputException($"--jobs {jobs}: expected at least 1");
        _logs.Clear();
        _loras.Clear();
        var runDirs = new Dictionary<string, string>();
        string TrainOne(string method)
        {
            var cfg = Plan.TrainingConfig(method);
            bool resume = _earlier == EarlierOutput.Resume && RunFolder.HoldsRun(cfg.OutputDir);
            return resume && RunFolder.IsFinished(cfg.OutputDir) ? cfg.OutputDir : train(cfg, resume);
        }
        if (jobs == 1)
            foreach (var method in Plan.Methods) runDirs[method] = TrainOne(method);
        else
            RunLanes(Plan.TrainingOrder, jobs, method => { var dir = TrainOne(method); lock (runDirs) runDirs[method] = dir; });
        foreach (var method in Plan.Methods)
        {
            _logs[method] = Path.Combine(runDirs[method], FocusNFixTrainer.LogName);
            _loras.Add((method, Path.Combine(runDirs[method], FocusNFixTrainer.FinalPeftName)));
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> for each item on <paramref name="lanes"/> threads, starting items in the given order
    /// (Parallel.ForEach would partition them instead). After a failure no new item starts; the ones running finish,
    /// and the first failure is thrown.
    /// </summary>
    public static void RunLanes<T>(IReadOnlyList<T> items, int lanes, Action<T> work)
    {
        var queue = new Queue<T>(items);
        var failures = new List<Exception>();
        var threads = Enumerable.Range(0, Math.Min(lanes, items.Count)).Select(_ => new Thread(() =>
        {
            while (true)
            {
                T item;
                lock (queue)
                {
                    if (failures.Count > 0 || queue.Count == 0) return;
                    item = queue.Dequeue();
                }
                try { work(item); }
                catch (Exception e) { lock (queue) failures.Add(e); }
            }
        })).ToList();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        if (failures.Count > 0) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failures[0]).Throw();
    }

    /// <summary>Evaluates the base model and the trained methods on the test prompts and writes the report; call after <see cref="TrainMethods"/>.</summary>
    /// <param name="commandLine">how the demo was started, recorded in the report.</param>
    public EvaluationResult EvaluateAndReport(string commandLine, Action<string, int, int>? progress = null)
    {
        CheckTrained();
        return Report(Plan.Evaluate(_loras, _logs, progress), commandLine);
    }

    /// <summary>
    /// Evaluates one shard of the test prompts x seeds into <see cref="DemoPlan.EvalShardDir"/> (what a child process of
    /// <see cref="EvaluateShardsAndReport"/> runs); an earlier attempt at the shard is replaced.
    /// </summary>
    public void EvaluateShard(EvalShard shard, Action<string, int, int>? progress = null)
    {
        CheckTrained();
        if (shard.IsWhole) throw new ArgumentException("expected a part of the evaluation, not the whole", nameof(shard));
        var dir = Plan.EvalShardDir(shard.Index);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        ReportWriter.Write(Plan.Evaluate(_loras, _logs, progress, shard, Plan.ShardBatchSize(shard.Count)), dir);
    }

    /// <summary>
    /// The evaluation in <paramref name="shards"/> parts run at once (each by <paramref name="evaluateShard"/>, which the
    /// CLI runs as a child process calling <see cref="EvaluateShard"/>), merged into the report one process would write
    /// with the same thread count (<see cref="ShardMerge"/>: the same figures to the last bit); the shards' folders are then deleted.
    /// </summary>
    public EvaluationResult EvaluateShardsAndReport(string commandLine, int shards, Action<EvalShard> evaluateShard)
    {
        CheckTrained();
        if (shards < 2) throw new ArgumentOutOfRangeException(nameof(shards), shards, "expected 2 or more shards");
        var parts = Enumerable.Range(0, shards).Select(i => new EvalShard(i, shards)).ToList();
        RunLanes(parts, shards, evaluateShard);
        var merged = ShardMerge.Merge(parts.Select(p => Plan.EvalShardDir(p.Index)).ToList(), Plan.OutDir);
        merged.Notes.Remove("merged_from");
        merged.Notes["evaluation"] = $"{shards} processes at once, each on a part of the test prompts x seeds, merged";
        var result = Report(merged, commandLine);
        Directory.Delete(Plan.EvalShardsDir, recursive: true);
        return result;
    }

    void CheckTrained()
    {
        if (_loras.Count != Plan.Methods.Count) throw new InvalidOperationException("the demo's methods are not trained yet");
    }

    EvaluationResult Report(EvaluationResult result, string commandLine)
    {
        Plan.WritePrompts(result);
        result.Notes["wall_time"] = $"{WallTime.TotalMinutes:F1} min";
        result.Notes["command"] = commandLine;
        result.Notes["test prompts"] = Plan.TestPrompts is int n ? $"the first {n} of the split" : "all of the split";
        foreach (var (k, v) in RunEnvironment.Describe()) result.Notes["version " + k] = v;
        foreach (var method in Plan.Methods) result.Notes["recipe " + method] = Recipe(Plan.TrainingConfig(method));
        foreach (var v in Plan.SamplingBaselines) result.Notes["recipe " + v.Method] = Recipe(v);
        if (result.Summaries.Count == 0) result.ComputeSummaries();
        result.HeadlineMetrics = DemoVerdict.HeadlineMetrics(Plan.Defect);
        result.Verdict = DemoVerdict.Compose(result, Plan.Defect, Plan.Trained);
        ReportWriter.Write(result, Plan.OutDir);
        return result;
    }

    /// <summary>One line of the hyperparameters a method trained with (the rest of the recipe is the same for every method).</summary>
    internal static string Recipe(TrainingConfig c) => FormattableString.Invariant(
        $"lambda={c.Constraint.Lambda}, norm={c.Constraint.Norm}, space={c.Constraint.Space}, lr={c.Optimizer.LearningRate}, grad_clip={c.Optimizer.GradClip}, warmup={c.Optimizer.WarmupSteps}, steps={c.Train.Steps}, batch={c.Train.BatchSize}, pool={c.Prompts.Limit?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "all"} {c.Prompts.WorldSplit} prompts x {c.Prompts.SeedsPerPrompt} seeds, draft={c.Draft.Mode} k={c.Draft.K}, sampling_steps={c.Sampling.Steps?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "model default"}, seed={c.Seed}");

    /// <summary>One line of a training-free baseline's sampling settings.</summary>
    internal static string Recipe(SamplingVariant v) => FormattableString.Invariant(
        $"guidance={v.GuidanceScale?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "the evaluation's"}, negative_prompt={v.NegativePrompt ?? "none"}, sld={(v.Sld is { } sld ? $"concept '{sld.Concept}' sld_guidance={sld.Settings.GuidanceScale} warmup={sld.Settings.WarmupSteps} threshold={sld.Settings.Threshold} momentum={sld.Settings.MomentumScale} beta={sld.Settings.MomentumBeta}" : "off")}");

    public TimeSpan WallTime => _clock.Elapsed;
    public string ReportHtml => Path.Combine(Plan.OutDir, ReportWriter.HtmlFile);
}
