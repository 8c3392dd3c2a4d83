using System.Text.Json;
using System.Text.RegularExpressions;
using FocusNFix.IO;
using FocusNFix.Lora;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>How a run treats an output folder that already holds a run.</summary>
public enum RunStart
{
    /// <summary>The folder must hold no run files (it may hold the user's own files).</summary>
    Fresh,
    /// <summary>Continue from the newest complete checkpoint (from step 0 if the run never wrote one).</summary>
    Resume,
    /// <summary>Delete the run files first (only those: the user's own files stay), then start fresh.</summary>
    Overwrite,
}

/// <summary>A complete checkpoint folder (checkpoints/step-N) and the step it resumes at.</summary>
public sealed record RunCheckpoint(string Folder, int Step);

/// <summary>
/// A training run's folder and everything the trainer writes into it: config.json, log.jsonl, the TensorBoard events,
/// originals/ (I0 and masks), checkpoints/, the default disk cache cache/ and the final LoRA files. It holds the
/// folder's <see cref="RunLock"/> from <see cref="Open"/> to <see cref="Dispose"/>.
/// <para>
/// Every file is written atomically (temporary file or folder, then a rename), so a run killed at any moment leaves
/// complete files plus, at most, temporaries (<c>.NAME.PID.GUID.tmp</c>, <c>checkpoints/step-N.tmp</c>), a partial last
/// log line or TensorBoard record, and a stale lock; opening the folder again removes or ignores each of them.
/// </para>
/// </summary>
public sealed class RunFolder : IDisposable
{
    public const string ConfigName = "config.json";
    public const string LogName = "log.jsonl";
    /// <summary>A budgeted run's final lambda (constraint.budget), for a fixed-lambda rerun.</summary>
    public const string LambdaName = "lambda.json";
    public const string TensorBoardFolder = "tensorboard";
    public const string OriginalsFolder = "originals";
    public const string CheckpointsFolder = "checkpoints";
    public const string DefaultCacheFolder = "cache";
    const string KohyaFolder = "kohya";

    public string Dir { get; }
    public string TensorBoardDir => Path.Combine(Dir, TensorBoardFolder);
    /// <summary>Where a disk cache lives when the config names no cache_dir.</summary>
    public string DefaultCacheDir => Path.Combine(Dir, DefaultCacheFolder);

    readonly RunLock _lock;
    readonly bool _createdFolder;
    // cache/ is the run's own unless the config names it as a (possibly shared) cache_dir.
    readonly bool _ownsCache;

    RunFolder(string dir, RunLock runLock, bool createdFolder, bool ownsCache)
    {
        Dir = dir;
        _lock = runLock;
        _createdFolder = createdFolder;
        _ownsCache = ownsCache;
    }

    /// <summary>
    /// Creates the folder if needed, takes its lock and applies <paramref name="start"/>: Fresh refuses a folder that
    /// holds run files, Overwrite deletes them, Resume keeps them. Leftovers of a killed run are removed in every case.
    /// </summary>
    /// <param name="cacheDir">the config's train.cache_dir (null: the default cache/ folder).</param>
    /// <param name="warn">told when a stale lock is taken over.</param>
    public static RunFolder Open(string dir, RunStart start, string? cacheDir, Action<string> warn)
    {
        if (File.Exists(dir)) throw new InvalidInputException($"{dir}: output_dir is a file; expected a folder (or a path that does not exist yet)");
        bool created = !Directory.Exists(dir);
        Directory.CreateDirectory(dir);
        bool ownsCache = cacheDir is null || Path.TrimEndingDirectorySeparator(Path.GetFullPath(cacheDir)) != Path.GetFullPath(Path.Combine(dir, DefaultCacheFolder));
        var folder = new RunFolder(dir, RunLock.Acquire(dir, warn), created, ownsCache);
        try
        {
            if (start == RunStart.Overwrite) folder.DeleteRunFiles();
            folder.RemoveKillLeftovers();
            if (start == RunStart.Fresh && folder.RunFiles() is { Count: > 0 } found)
                throw new InvalidInputException($"{dir}: the folder holds a run already ({string.Join(", ", found.Take(4))}{(found.Count > 4 ? ", ..." : "")}); "
                    + "pass --resume to continue it or --overwrite to delete its files and start again");
            return folder;
        }
        catch
        {
            folder.Dispose();
            throw;
        }
    }

    // ---- the run's own files ------------------------------------------------------------------------------------

    static readonly Regex AtomicTemp = new(@"^\.(?<name>.+)\.[0-9]+\.[0-9a-f]{32}\.tmp$", RegexOptions.CultureInvariant);
    static readonly Regex CheckpointName = new(@"^step-(?<step>[0-9]{6,})$", RegexOptions.CultureInvariant);
    static readonly Regex CheckpointTemp = new(@"^step-[0-9]{6,}\.tmp$", RegexOptions.CultureInvariant);

    static Regex Exactly(params string[] names) => new("^(" + string.Join("|", names.Select(Regex.Escape)) + ")$", RegexOptions.CultureInvariant);

    /// <summary>Each folder (relative to the run folder) and the names of the files the trainer writes there.</summary>
    IEnumerable<(string Folder, Regex Names)> OwnFilePatterns()
    {
        yield return ("", Exactly(ConfigName, LogName, LambdaName, RunFolderLora.DiffusersName, PeftAdapterConfig.FileName, PeftAdapterConfig.WeightsName,
            RunFolderLora.LegacyPeftName, RunFolderLora.LegacyKohyaName));
        yield return (KohyaFolder, Exactly(Path.GetFileName(RunFolderLora.KohyaName)));
        yield return (TensorBoardFolder, new Regex(@"^events\.out\.tfevents\..+$", RegexOptions.CultureInvariant));
        yield return (OriginalsFolder, new Regex(@"^[0-9]+_-?[0-9]+(_mask)?\.png$", RegexOptions.CultureInvariant));
        if (_ownsCache) yield return (DefaultCacheFolder, new Regex(@"^([0-9]+\.safetensors|" + Regex.Escape(OriginalCache.ManifestName) + ")$", RegexOptions.CultureInvariant));
    }

    /// <summary>The run files present (relative paths): what a fresh start refuses and --overwrite deletes.</summary>
    public List<string> RunFiles()
    {
        var found = new List<string>();
        foreach (var (folder, names) in OwnFilePatterns())
        {
            var dir = Path.Combine(Dir, folder);
            if (!Directory.Exists(dir)) continue;
            found.AddRange(Directory.EnumerateFiles(dir).Select(Path.GetFileName).Where(n => IsOwn(n!, names))
                .OrderBy(n => n, StringComparer.Ordinal).Select(n => Path.Combine(folder, n!)));
        }
        var checkpoints = Path.Combine(Dir, CheckpointsFolder);
        if (Directory.Exists(checkpoints))
            found.AddRange(Directory.EnumerateDirectories(checkpoints).Select(Path.GetFileName)
                .Where(n => CheckpointName.IsMatch(n!) || CheckpointTemp.IsMatch(n!)).OrderBy(n => n, StringComparer.Ordinal)
                .Select(n => Path.Combine(CheckpointsFolder, n!)));
        return found;
    }

    static bool IsOwn(string name, Regex names) =>
        names.IsMatch(name) || (AtomicTemp.Match(name) is { Success: true } t && names.IsMatch(t.Groups["name"].Value));

    /// <summary>Deletes the run files (and their folders once empty); files the trainer does not write stay.</summary>
    public void DeleteRunFiles()
    {
        foreach (var rel in RunFiles())
        {
            var path = Path.Combine(Dir, rel);
            if (Directory.Exists(path)) Directory.Delete(path, true);
            else File.Delete(path);
        }
        foreach (var sub in new[] { KohyaFolder, TensorBoardFolder, OriginalsFolder, CheckpointsFolder, DefaultCacheFolder })
        {
            var path = Path.Combine(Dir, sub);
            if (Directory.Exists(path) && !Directory.EnumerateFileSystemEntries(path).Any()) Directory.Delete(path);
        }
    }

    /// <summary>
    /// Removes what a killed run leaves behind: temporary files of the run's own files and half-written checkpoint
    /// folders. Safe only under the lock: no other process can be writing them.
    /// </summary>
    void RemoveKillLeftovers()
    {
        foreach (var (folder, names) in OwnFilePatterns())
        {
            var dir = Path.Combine(Dir, folder);
            if (!Directory.Exists(dir)) continue;
            foreach (var f in Directory.EnumerateFiles(dir).Where(f => AtomicTemp.Match(Path.GetFileName(f)) is { Success: true } t && names.IsMatch(t.Groups["name"].Value)).ToList())
                File.Delete(f);
        }
        var checkpoints = Path.Combine(Dir, CheckpointsFolder);
        if (Directory.Exists(checkpoints))
            foreach (var d in Directory.GetDirectories(checkpoints).Where(d => CheckpointTemp.IsMatch(Path.GetFileName(d))))
                Directory.Delete(d, true);
    }

    // ---- config, log, originals ---------------------------------------------------------------------------------

    public void WriteConfig(TrainingConfig config) => AtomicFile.WriteAllText(Path.Combine(Dir, ConfigName), config.ToJson());

    /// <summary>Appends a step's row to log.jsonl.</summary>
    public void AppendLog(TrainStepLog entry)
    {
        JsonlLog.Append(Path.Combine(Dir, LogName), entry);
        KillPoint.Reached("after-step", entry.Step);
    }

    /// <summary>
    /// Drops every logged step at or after <paramref name="step"/> (log.jsonl and the TensorBoard events), so a resumed
    /// run's logs hold each step once. A partial last line or record (the run was killed mid-write) is dropped too.
    /// </summary>
    public void TruncateLogs(int step)
    {
        var log = Path.Combine(Dir, LogName);
        if (File.Exists(log))
        {
            var text = File.ReadAllText(log);
            var lines = text.Split('\n').ToList();
            // The last element is "" after a final newline, else a line whose write was cut short.
            lines.RemoveAt(lines.Count - 1);
            var kept = new List<string>();
            for (int i = 0; i < lines.Count; i++)
            {
                if (lines[i].Trim().Length == 0) continue;
                int rowStep;
                try { rowStep = JsonDocument.Parse(lines[i]).RootElement.GetProperty("step").GetInt32(); }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
                {
                    throw new InvalidInputException($"{log}: line {i + 1}: expected a JSON object with an integer 'step' ({e.Message})");
                }
                if (rowStep < step) kept.Add(lines[i]);
            }
            AtomicFile.WriteAllText(log, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        }
        if (Directory.Exists(TensorBoardDir))
            foreach (var events in Directory.GetFiles(TensorBoardDir, "events.out.tfevents.*"))
                TensorBoardLog.DropFromStep(events, step);
    }

    public string OriginalImagePath(PoolEntry e) => Path.Combine(Dir, OriginalsFolder, $"{e.PromptIndex}_{e.Seed}.png");
    public string OriginalMaskPath(PoolEntry e) => Path.Combine(Dir, OriginalsFolder, $"{e.PromptIndex}_{e.Seed}_mask.png");

    /// <summary>Writes each pool entry's original image and mask as PNGs into originals/.</summary>
    public void SaveOriginals(OriginalCache cache)
    {
        for (int i = 0; i < cache.Pool.Count; i++)
        {
            var e = cache.Pool[i];
            using var scope = NewDisposeScope();
            var c = cache.Get(i);
            Images.SavePng(c.Image, OriginalImagePath(e));
            Masks.HeatmapMask.SavePng(c.Mask, OriginalMaskPath(e));
        }
    }

    // ---- checkpoints --------------------------------------------------------------------------------------------

    const string StateName = "state.json";
    const string LoraStateName = "lora_state.safetensors";
    const string OptimizerName = "optimizer.safetensors";
    static readonly string[] CheckpointFiles = { LoraStateName, OptimizerName, ConfigName, StateName };

    /// <summary>
    /// The newest complete checkpoint, or null. Temporary folders (a write cut short) and folders missing a file (a
    /// delete of an old checkpoint cut short) do not count.
    /// </summary>
    public RunCheckpoint? LatestCheckpoint()
    {
        var root = Path.Combine(Dir, CheckpointsFolder);
        if (!Directory.Exists(root)) return null;
        return Directory.GetDirectories(root)
            .Select(d => (Dir: d, Match: CheckpointName.Match(Path.GetFileName(d))))
            .Where(x => x.Match.Success && CheckpointFiles.All(f => File.Exists(Path.Combine(x.Dir, f))))
            .Select(x => new RunCheckpoint(x.Dir, int.Parse(x.Match.Groups["step"].Value, System.Globalization.CultureInfo.InvariantCulture)))
            .OrderBy(c => c.Step).LastOrDefault();
    }

    /// <summary>
    /// Writes LoRA weights, optimiser state, step, skip count and config into checkpoints/step-N through a temporary
    /// folder and a rename (state.json last), so a killed run never leaves a half-written checkpoint. Keeps the two newest.
    /// </summary>
    /// <param name="controls">the state of the trainer's controllers (the preservation budget's lambda), restored on resume; null: none.</param>
    public void SaveCheckpoint(int nextStep, LoraNetwork lora, AdamW optimizer, int skipped, TrainingConfig config, string? controls = null)
    {
        var root = Path.Combine(Dir, CheckpointsFolder);
        Directory.CreateDirectory(root);
        var final = Path.Combine(root, $"step-{nextStep:D6}");
        var tmp = final + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        // The state dicts hold fresh handles (views, the step counter): disposed here, not left to the garbage collector.
        using (var scope = NewDisposeScope())
        {
            Safetensors.Save(Path.Combine(tmp, LoraStateName), lora.StateDict());
            KillPoint.Reached("checkpoint-write", nextStep);
            Safetensors.Save(Path.Combine(tmp, OptimizerName), optimizer.StateDict());
        }
        File.WriteAllText(Path.Combine(tmp, ConfigName), config.ToJson());
        File.WriteAllText(Path.Combine(tmp, StateName), JsonSerializer.Serialize(new
        {
            step = nextStep,
            skipped_steps = skipped,
            seed = config.Seed,
            controls,
            rng = "batches are a function of (seed, step) and the noise of each (prompt, seed) is cached; no global RNG state is consumed",
        }, TrainingConfig.Json));
        if (Directory.Exists(final)) Directory.Delete(final, true);
        Directory.Move(tmp, final);
        var complete = Directory.GetDirectories(root).Where(d => CheckpointName.IsMatch(Path.GetFileName(d))).OrderBy(d => d, StringComparer.Ordinal);
        foreach (var old in complete.SkipLast(2).ToList())
            Directory.Delete(old, true);
    }

    /// <summary>Loads a checkpoint's LoRA weights and optimiser state; returns (the step to resume at, steps skipped so far, the controllers' state or null).</summary>
    public (int Step, int Skipped, string? Controls) LoadCheckpoint(RunCheckpoint checkpoint, LoraNetwork lora, AdamW optimizer)
    {
        var statePath = Path.Combine(checkpoint.Folder, StateName);
        int step, skipped;
        string? controls;
        try
        {
            var state = JsonDocument.Parse(File.ReadAllText(statePath)).RootElement;
            step = state.GetProperty("step").GetInt32();
            skipped = state.GetProperty("skipped_steps").GetInt32();
            controls = state.TryGetProperty("controls", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidInputException($"{statePath}: expected a JSON object with integer 'step' and 'skipped_steps' ({e.Message})");
        }
        if (step != checkpoint.Step) throw new InvalidInputException($"{statePath}: step = {step}: expected {checkpoint.Step}, the step in the folder's name");
        var loraPath = Path.Combine(checkpoint.Folder, LoraStateName);
        var optimizerPath = Path.Combine(checkpoint.Folder, OptimizerName);
        using (var scope = NewDisposeScope())
        {
            lora.LoadStateDict(Safetensors.Load(loraPath), loraPath);
            optimizer.LoadStateDict(Safetensors.Load(optimizerPath), optimizerPath);
        }
        KillPoint.Reached("resume", step);
        return (step, skipped, controls);
    }

    // ---- final LoRA ---------------------------------------------------------------------------------------------

    /// <summary>Whether every final LoRA file is present (a run killed while writing them has only some).</summary>
    public bool HasFinalLora => IsFinished(Dir);

    /// <summary>Whether a run folder holds a finished run: every final LoRA file is there (they are written last).</summary>
    public static bool IsFinished(string dir) => new[] { RunFolderLora.DiffusersName, PeftAdapterConfig.FileName, PeftAdapterConfig.WeightsName, RunFolderLora.KohyaName }
        .All(f => File.Exists(Path.Combine(dir, f)));

    /// <summary>Whether a folder holds a run, finished or not (its config.json is written first).</summary>
    public static bool HoldsRun(string dir) => File.Exists(Path.Combine(dir, ConfigName));

    public void WriteLora(LoraNetwork lora, string baseModel) => RunFolderLora.Write(Dir, lora, baseModel);

    /// <summary>
    /// Writes lambda.json: where the preservation budget's dual variable ended, the budget it served, and whether it still
    /// bound. A run the monitor stopped kept an earlier LoRA: final_lambda is then the lambda of that LoRA's step
    /// (<see cref="MonitorStop.LoraLambda"/>), the one a fixed-lambda rerun of it would continue with.
    /// </summary>
    public void WriteFinalLambda(PreservationBudget budget, BudgetConfig config, int steps, MonitorStop? stop)
        => AtomicFile.WriteAllText(Path.Combine(Dir, LambdaName), JsonSerializer.Serialize(new
    {
        final_lambda = stop?.LoraLambda ?? budget.Lambda,
        budget = config,
        smoothed_psnr_outside = double.IsNaN(budget.SmoothedPsnr) ? (double?)null : budget.SmoothedPsnr,
        binding_at_end = budget.Lambda > 0,
        training_target_psnr = budget.Target,
        heldout_offset = budget.Offset,
        steps_at_zero_at_end = budget.StepsAtZero,
        stopped_at = stop?.Step,
        lora_step = stop?.LoraStep,
        reading = FinalReading(budget, steps, stop),
        use = "constraint.lambda = final_lambda without a budget trains with the weight this run ended on",
    }, TrainingConfig.Json) + "\n");

    /// <summary>Where the budget ended, in words, as lambda.json and <c>fnf train</c> give it: a stopped run says so first.</summary>
    public static string FinalReading(PreservationBudget budget, int steps, MonitorStop? stop)
        => (stop is { } s ? $"the monitor stopped the run at step {s.Step} and it kept the LoRA of step {s.LoraStep} (lambda {s.LoraLambda ?? budget.Lambda:0.###} then); at the stop, " : "")
           + budget.Reading(stop?.Step ?? steps);

    /// <summary>
    /// Undoes a start that failed before training began: deletes the run files it wrote, and the folder if this run
    /// created it and it is empty. Only for fresh and overwrite starts; a resumed run's files are never deleted.
    /// </summary>
    public void AbandonStart()
    {
        DeleteRunFiles();
        Dispose();
    }

    /// <summary>Releases the lock; a folder this run created and left empty (a start that failed) goes too.</summary>
    public void Dispose()
    {
        _lock.Dispose();
        if (_createdFolder && Directory.Exists(Dir) && !Directory.EnumerateFileSystemEntries(Dir).Any()) Directory.Delete(Dir);
    }
}

/// <summary>
/// Where the monitor stopped a run (train.stop_on_hacking) and the LoRA it kept: the best unflagged step's, with the
/// budget's lambda then (null when there was no budget, or no unflagged LoRA and the stop step's is kept).
/// </summary>
public sealed record MonitorStop(int Step, int LoraStep, double? LoraLambda);
