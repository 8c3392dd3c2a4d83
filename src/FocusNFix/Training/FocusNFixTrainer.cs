using System.Text.Json;
using FocusNFix.Distributed;
using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>One logged training step (also the rows of the run's log.jsonl).</summary>
/// <remarks><c>Lambda</c> is the constraint weight the step used (the dual variable's value under a budget) and
/// <c>PsnrOutside</c> the batch's mean PSNR outside the mask against the originals, <c>PsnrOutsideMedian</c> its
/// median over the batch's images (identical pixels count as <see cref="PreservationBudget.PsnrCeiling"/> dB).</remarks>
public sealed record TrainStepLog(int Step, double Loss, double Reward, double Constraint, double ChangeInside, double ChangeOutside,
    double GradNorm, double LearningRate, bool Skipped, int SkippedTotal, double Lambda = 0, double PsnrOutside = double.NaN,
    double PsnrOutsideMedian = double.NaN);

/// <summary>
/// The Focus-N-Fix trainer: LoRA on the frozen base UNet, trained by backprop through the last K sampling steps
/// (DRaFT-K) to maximise the rewards while the region constraint keeps the image outside the mask as the original
/// model drew it. The objectives draft (lambda = 0) and global (mask all zeros) run through the same loop.
/// Data-parallel over a process group (MPI): every member computes an equal share of each batch's shards, the
/// shards' gradients are added over the group (in shard order with train.gradient_shards, which makes the result
/// independent of the process count), and the identical update runs everywhere; rank 0 alone owns the run folder.
/// </summary>
public sealed class FocusNFixTrainer : IDisposable
{
    public TrainingConfig Config { get; }
    public string RunDir { get; }
    readonly TextToImagePipeline _pipe;
    readonly IReward _reward;
    readonly OriginalCache _cache;
    readonly LoraNetwork _lora;
    readonly PoolSampler _sampler;
    int _startStep;
    readonly bool _ownsReward;
    readonly IHeatmapSource? _ownedHeatmap;
    readonly List<int> _active;
    int _skipped;
    readonly PreservationBudget? _budget;
    readonly ValidationMonitor? _monitor;
    readonly PoolSampler? _monitorSampler;
    readonly List<IReward> _guards = new();
    Dictionary<string, Tensor>? _bestLora;
    int? _bestStep;
    // The budget's lambda when the best LoRA was taken: the one its step trained with, for a stopped run's lambda.json.
    double? _bestLambda;
    readonly RunFolder? _run;
    double _allReduceSeconds, _stepSeconds;
    int _timedSteps;

    public const string FinalPeftName = RunFolderLora.DiffusersName;
    public const string FinalKohyaName = RunFolderLora.KohyaName;
    public const string LogName = RunFolder.LogName;

    /// <param name="resume">continue the run in the config's output_dir from its newest checkpoint (<c>--resume</c>).</param>
    /// <param name="reward">overrides the config's rewards (tests, custom rewards from code); moved to the pipeline's
    /// device, still owned by the caller.</param>
    /// <param name="heatmapOverride">overrides the config's heatmap source; moved to the pipeline's device, still owned
    /// by the caller.</param>
    /// <param name="overwrite">delete the run files already in output_dir first (<c>--overwrite</c>); without it or
    /// <paramref name="resume"/>, a folder that holds a run is refused.</param>
    /// <param name="warn">told about a stale lock taken over (default: a "warning:" line on stderr).</param>
    /// <param name="guardsOverride">the monitor's guards instead of train.monitor.guards (tests, custom scores from code); still owned by the caller.</param>
    /// <param name="group">the processes training together (<see cref="MpiLaunch.World"/> under mpirun); null: this
    /// process alone. Every member builds a trainer with the same config; rank 0 opens the run folder.</param>
    public FocusNFixTrainer(TrainingConfig config, bool resume = false, Action<string, int, int>? progress = null,
        IReward? reward = null, IHeatmapSource? heatmapOverride = null, bool overwrite = false, Action<string>? warn = null,
        IReadOnlyList<IReward>? guardsOverride = null, IProcessGroup? group = null)
    {
        Config = config;
        RunDir = config.OutputDir;
        Group = group ?? SingleProcess.Instance;
        if (resume && overwrite) throw new InvalidInputException($"{RunDir}: --resume and --overwrite exclude each other: continue the run or start it again");
        if (Group.Size > 1 && (config.Constraint.Budget != null || config.Train.Monitor != null))
            throw new InvalidInputException($"constraint.budget / train.monitor: not supported with {Group.Size} MPI processes yet (their state lives on one process); train them without mpirun");
        if (config.Train.BatchSize % Group.Size != 0)
            throw new InvalidInputException($"train.batch_size = {config.Train.BatchSize}: expected a multiple of the {Group.Size} MPI processes (each takes an equal share of every batch)");
        if (config.Train.GradientShards is int shards && shards % Group.Size != 0)
            throw new InvalidInputException($"train.gradient_shards = {shards}: expected a multiple of the {Group.Size} MPI processes (each computes an equal number of the shards)");
        if (config.Threads > 0) set_num_threads(config.Threads);
        // Several processes on one machine share its cores: torch's default (all of them) would oversubscribe it.
        else if (Group.Size > 1) set_num_threads(Math.Max(1, Environment.ProcessorCount / Math.Max(1, MpiLaunch.LocalSize())));
        // Unset sampling settings become the model's recommended ones here, so the run folder records what was used.
        (config.Sampling.Steps, config.Sampling.GuidanceScale) = PipelineFolder.Open(config.Model).ResolveSampling(config.Sampling.Steps, config.Sampling.GuidanceScale);
        config.Validate($"training config (sampling resolved with {config.Model})");
        if (IsLeader)
            _run = RunFolder.Open(RunDir, resume ? RunStart.Resume : overwrite ? RunStart.Overwrite : RunStart.Fresh,
                config.Train.Cache == "disk" ? config.Train.CacheDir : null, warn ?? (m => Console.Error.WriteLine($"warning: {m}")));
        // A start that fails before training releases the folder, and a fresh one takes its files with it.
        using var unlessBuilt = new UnlessBuilt(this, abandon: !resume);
        var latest = resume && IsLeader ? ResumePoint() : null;
        _run?.WriteConfig(config);
        // The others touch nothing of the folder (an overwrite deletes its default cache) until rank 0 has taken it.
        Group.Barrier();

        manual_seed(config.Seed);
        _pipe = TextToImagePipeline.Load(config.Model, Placement.ParseDevice(config.Device, "device"), Placement.ParseDType(config.Dtype, "dtype"));
        if (config.Sampling.Scheduler is { } s) _pipe.UseScheduler(s);
        // PNDM's step returns no x0 prediction, and ReFL's image is one.
        if (config.Draft.Mode == "refl" && _pipe.Scheduler is Schedulers.PndmScheduler)
            throw new InvalidInputException($"draft.mode 'refl' needs a scheduler that predicts x0; {_pipe.Scheduler.ClassName} (sampling.scheduler {config.Sampling.Scheduler ?? "null: the pipeline's own"}) does not: choose ddim, ddpm, euler, euler-a or dpmpp-2m");
        foreach (var p in _pipe.Unet.parameters().Concat(_pipe.TextEncoder.parameters())) p.requires_grad = false;
        if (_pipe.Vae != null) foreach (var p in _pipe.Vae.parameters()) p.requires_grad = false;
        // With checkpointing the window's UNet recomputes and the differentiable VAE decode keep block inputs only.
        _pipe.ActivationCheckpointing = config.Draft.ActivationCheckpointing;

        _ownsReward = reward is null;
        _reward = reward ?? RewardFactory.CreateRewards(config.Rewards, _pipe.Device);
        _reward.To(_pipe.Device);
        var heatmap = heatmapOverride ?? RewardFactory.CreateHeatmap(config.Heatmap, _pipe.Device, _reward);
        _ownedHeatmap = heatmapOverride is null ? heatmap : null;
        heatmap.To(_pipe.Device);
        var pool = BuildPool(config);
        bool zeroMasks = config.Objective == "global";
        var cacheDir = config.Train.Cache == "disk" ? config.Train.CacheDir ?? Path.Combine(RunDir, RunFolder.DefaultCacheFolder) : null;
        _sampler = new PoolSampler(_pipe, config.Sampling.Steps.Value, config.Sampling.GuidanceScale.Value, config.Sampling.Eta, Window(config.Draft));
        _cache = OriginalCache.Build(_sampler, pool, heatmap, config.Mask, zeroMasks, cacheDir,
            progress: (d, t) => progress?.Invoke("caching originals", d, t), key: heatmapOverride is null ? CacheKey(config) : null, group: Group);
        _run?.SaveOriginals(_cache);
        _active = Enumerable.Range(0, _cache.Pool.Count).Where(i => !config.Prompts.OnlyProblematic || _cache.IsProblematic(i)).ToList();
        if (_active.Count == 0) throw new InvalidInputException("prompts.only_problematic is set but no original image of the pool has a non-empty mask");

        if (config.Train.Monitor is { } mc)
        {
            if (guardsOverride is null)
                foreach (var spec in mc.Guards) _guards.Add(RewardFactory.CreateReward(spec, _pipe.Device));
            var guardList = (guardsOverride ?? _guards).ToList();
            foreach (var g in guardList) g.To(_pipe.Device);
            var valPrompts = mc.PromptsFile is { } pf ? PromptFile.Read(pf)
                : (WorldPromptSource ?? throw new InvalidInputException("train.monitor.prompts_file is required: no world supplies prompt splits")).Invoke(config.Model, mc.WorldSplit);
            // The final images, whatever the training window is (ReFL's image is an x0 prediction).
            _monitorSampler = new PoolSampler(_pipe, config.Sampling.Steps.Value, config.Sampling.GuidanceScale.Value, config.Sampling.Eta, new GradientWindow(BackpropMode.DraftK, 1, false));
            _monitor = new ValidationMonitor(_monitorSampler, valPrompts, mc, _reward, guardList.Select(g => (g.Name, g)).ToList(), heatmap, config.Mask,
                config.Constraint.Budget?.MinPsnrOutside);
            // Before the LoRA exists: these are the base model's images.
            if (latest != null) _monitor.SampleBase();
        }

        using (var g = new Generator((ulong)config.Seed + 1))
            _lora = LoraNetwork.Attach(_pipe.Unet, new LoraConfig { Rank = config.Lora.Rank, Alpha = config.Lora.Alpha, TargetModules = config.Lora.TargetModules.ToArray() }, g);
        Optimizer = new AdamW(_lora.TrainableParameters(), config.Optimizer.LearningRate, config.Optimizer.WeightDecay);
        if (config.Constraint.Budget is { } budget) _budget = new PreservationBudget(budget, config.Constraint.Lambda);
        if (latest != null)
        {
            string? controls;
            (_startStep, _skipped, controls) = Run.LoadCheckpoint(latest, _lora, Optimizer);
            var states = controls is null ? new Dictionary<string, string>() : JsonSerializer.Deserialize<Dictionary<string, string>>(controls) ?? new();
            if (_budget != null)
                _budget.LoadState(states.GetValueOrDefault("budget") ?? throw new InvalidInputException($"{latest.Folder}: the checkpoint has no budget state, but the config has constraint.budget"), latest.Folder);
            if (_monitor != null)
                _monitor.LoadState(states.GetValueOrDefault("monitor") ?? throw new InvalidInputException($"{latest.Folder}: the checkpoint has no monitor state, but the config has train.monitor"), latest.Folder);
        }
        if (resume) _run?.TruncateLogs(_startStep);
        ShareStartingState();
        unlessBuilt.Built();
    }

    /// <summary>
    /// Gives every member rank 0's starting point (step, skipped count, LoRA weights, AdamW moments and step count):
    /// only rank 0 reads the checkpoint, and from here on every member applies the same updates.
    /// </summary>
    void ShareStartingState()
    {
        if (Group.Size == 1) return;
        var optimiserState = Optimizer.StateDict();
        var counters = new long[] { _startStep, _skipped, Optimizer.StepCount };
        Group.Broadcast(counters, 0);
        (_startStep, _skipped) = ((int)counters[0], (int)counters[1]);
        var moments = optimiserState.Where(kv => kv.Key != "step").OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value);
        TensorCollectives.Broadcast(Group, _lora.TrainableParameters().Cast<Tensor>().Concat(moments).ToList(), 0);
        using var step = tensor(counters[2]);
        var withStep = new Dictionary<string, Tensor>(optimiserState) { ["step"] = step };
        Optimizer.LoadStateDict(withStep, "the state rank 0 broadcast");
        optimiserState["step"].Dispose();
    }

    /// <summary>
    /// The checkpoint a resumed run starts from: the newest complete one, or none (step 0) when the run was stopped
    /// before its first. Refuses a folder with no run, and a finished run.
    /// </summary>
    RunCheckpoint? ResumePoint()
    {
        var latest = Run.LatestCheckpoint();
        int steps = Config.Train.Steps;
        if (latest == null && !File.Exists(Path.Combine(RunDir, RunFolder.ConfigName)))
            throw new InvalidInputException($"{RunDir}: --resume given but the folder holds no run to resume (no config.json, no checkpoint)");
        if (latest != null && latest.Step > steps)
            throw new InvalidInputException($"{latest.Folder}: the checkpoint is at step {latest.Step}, past train.steps = {steps}");
        if (latest != null && latest.Step == steps && Run.HasFinalLora)
            throw new InvalidInputException($"{RunDir}: the run is finished (step {steps} of {steps}, LoRA written); nothing to resume (--overwrite trains it again)");
        return latest;
    }

    /// <summary>Releases the run folder (and abandons a fresh start's files) unless the constructor got to the end.</summary>
    sealed class UnlessBuilt(FocusNFixTrainer trainer, bool abandon) : IDisposable
    {
        bool _built;
        public void Built() => _built = true;
        public void Dispose()
        {
            if (_built) return;
            trainer.DisposeResources();
            if (abandon) trainer._run?.AbandonStart();
            else trainer._run?.Dispose();
        }
    }

    /// <summary>
    /// What I0 and M(I0) depend on besides the pool, for reusing a disk cache: the model folder, sampling, dtype,
    /// device, heatmap source, mask settings and rewards (saliency heatmaps come from them). A heatmap passed in code
    /// cannot be described, so such runs never reuse a cache.
    /// </summary>
    static string CacheKey(TrainingConfig c) => JsonSerializer.Serialize(new
    {
        model = Path.GetFullPath(c.Model), sampling = c.Sampling, dtype = c.Dtype, device = c.Device,
        heatmap = c.Heatmap, mask = c.Mask, rewards = c.Rewards,
    }, TrainingConfig.Json);

    public AdamW Optimizer { get; }
    /// <summary>The run folder: config, logs, originals, checkpoints, final LoRA; locked while the trainer lives. Rank 0's alone.</summary>
    public RunFolder Run => _run ?? throw new InvalidOperationException($"rank {Group.Rank} of {Group.Size} holds no run folder: rank 0 writes the run");
    /// <summary>The processes training together (one without MPI).</summary>
    public IProcessGroup Group { get; }
    /// <summary>Whether this process writes the run's files (rank 0, or the only process).</summary>
    public bool IsLeader => Group.Rank == 0;
    /// <summary>Mean wall time of the steps trained so far in this process and the share of it spent in the gradient all-reduce.</summary>
    public (double StepSeconds, double AllReduceShare, int Steps) Timing =>
        (_timedSteps == 0 ? 0 : _stepSeconds / _timedSteps, _stepSeconds > 0 ? _allReduceSeconds / _stepSeconds : 0, _timedSteps);
    public LoraNetwork Lora => _lora;
    public TextToImagePipeline Pipeline => _pipe;
    public OriginalCache Cache => _cache;

    /// <summary>The config's draft section as the loop's gradient window.</summary>
    public static GradientWindow Window(DraftConfig d) => new(
        d.Mode switch { "refl" => BackpropMode.Refl, "full" => BackpropMode.Full, _ => BackpropMode.DraftK }, d.K, d.Checkpointing);

    /// <summary>
    /// The prompts of a world split for a model folder (modelDir, split), used when a config names no prompt file.
    /// ShapesWorld registers itself here when the library loads; the trainer does not depend on it.
    /// </summary>
    public static Func<string, string, IReadOnlyList<string>>? WorldPromptSource { get; set; }

    /// <summary>The training pool: prompts (file or world split) x seeds 0..N-1.</summary>
    public static List<PoolEntry> BuildPool(TrainingConfig c)
    {
        IReadOnlyList<string> prompts;
        if (c.Prompts.File is { } file)
        {
            prompts = PromptFile.Read(file);
        }
        else
        {
            prompts = (WorldPromptSource ?? throw new InvalidInputException("prompts.file is required: no world supplies prompt splits"))
                .Invoke(c.Model, c.Prompts.WorldSplit);
        }
        if (c.Prompts.Limit is int n) prompts = prompts.Take(n).ToList();
        if (prompts.Count == 0) throw new InvalidInputException("the prompt pool is empty");
        return prompts.SelectMany((p, i) => Enumerable.Range(0, c.Prompts.SeedsPerPrompt).Select(s => new PoolEntry(i, p, s))).ToList();
    }

    /// <summary>The pool indices of step <paramref name="step"/>, micro-batch <paramref name="micro"/>: a function of (seed, step) only, so a resumed run sees the same batches.</summary>
    public IReadOnlyList<int> BatchIndices(int step, int micro)
    {
        int perStep = Config.Train.BatchSize * Config.Optimizer.GradAccumulation;
        long flat = (long)step * perStep + (long)micro * Config.Train.BatchSize;
        int n = _active.Count;
        var result = new List<int>();
        for (int k = 0; k < Config.Train.BatchSize; k++)
        {
            long pos = flat + k;
            long epoch = pos / n;
            var perm = Permutation(n, Config.Seed * 7919 + epoch);
            result.Add(_active[perm[(int)(pos % n)]]);
        }
        return result;
    }

    static int[] Permutation(int n, long seed)
    {
        var rng = new Random((int)(seed % int.MaxValue));
        var p = Enumerable.Range(0, n).ToArray();
        rng.Shuffle(p);
        return p;
    }

    /// <summary>The figures of one step's forward/backward, summed over its micro-batches.</summary>
    public sealed record StepGradients(double Loss, double Reward, double Constraint, double ChangeInside, double ChangeOutside, Tensor? Images,
        double PsnrOutside = double.NaN, double PsnrOutsideMedian = double.NaN);

    /// <summary>The constraint weight the next step uses: the budget's dual variable, else the config's (0 for draft).</summary>
    public double Lambda => _budget?.Lambda ?? LossSettings.FromConfig(Config).Lambda;

    /// <summary>The lambda lambda.json reports: for a run the monitor stopped, that of the kept LoRA's step; else <see cref="Lambda"/>.</summary>
    public double FinalLambda => _stop?.LoraLambda ?? Lambda;

    /// <summary>The preservation budget's reading of where the run stands, as lambda.json gives it (<see cref="RunFolder.FinalReading"/>); null without a budget.</summary>
    public string? BudgetReading => _budget is null ? null : RunFolder.FinalReading(_budget, Config.Train.Steps, _stop);

    // Null for a run that went to its last step.
    MonitorStop? _stop;

    /// <summary>The shards every micro-batch is computed as (train.gradient_shards, else one per process).</summary>
    public int GradientShards => Config.Train.GradientShards ?? Group.Size;

    // Per shard: loss, reward, constraint, change inside, change outside, PSNR outside.
    const int ShardFigures = 6;

    /// <summary>
    /// Zeroes the LoRA gradients and computes step <paramref name="step"/>'s gradients (the optimiser is not touched).
    /// A function of the LoRA weights and the step only, so repeating it from the same state gives the same gradients
    /// bit for bit. Every micro-batch is cut into <see cref="GradientShards"/> equal shards; each process computes its
    /// equal share of the shards, each shard from zeroed gradients over all micro-batches, and the shards' gradients
    /// are then added over the group, in shard order when train.gradient_shards is set (<see cref="ShardedGradients"/>);
    /// the figures always are. The loss is a batch mean, so each shard's mean is scaled by 1 / (shards x
    /// micro-batches). With one shard in one process this is plain accumulation into the gradients.
    /// </summary>
    public StepGradients ComputeGradients(int step, bool keepImages = false)
    {
        var c = Config;
        var settings = LossSettings.FromConfig(c) with { Lambda = Lambda };
        using var pause = TorchGcPause.Begin();
        int shards = GradientShards, micros = c.Optimizer.GradAccumulation;
        var (firstShard, ownShards) = DataShare.Range(shards, Group.Rank, Group.Size);
        _shardedGradients ??= shards > 1 || Group.Size > 1 ? new ShardedGradients(Optimizer.Parameters, shards, inShardOrder: c.Train.GradientShards != null) : null;
        // -0 where this process computes nothing: adding it is exact (see ShardedGradients).
        var figures = Enumerable.Repeat(-0.0, shards * ShardFigures).ToArray();
        // Each image's PSNR outside the mask, in slots per shard and micro-batch, so the batch median is the same
        // whichever process computed which shard (NaN: no image, or no pixel outside the mask).
        int perShard = c.Train.BatchSize / shards, imageSlots = micros * perShard;
        var imagePsnr = Enumerable.Repeat(-0.0, shards * imageSlots).ToArray();
        var kept = new List<Tensor>();
        for (int shard = firstShard; shard < firstShard + ownShards; shard++)
        {
            Optimizer.ZeroGrad();
            var f = figures.AsSpan(shard * ShardFigures, ShardFigures);
            f.Clear();
            for (int micro = 0; micro < micros; micro++)
            {
                using var scope = NewDisposeScope();
                var idx = DataShare.Of(BatchIndices(step, micro), shard, shards);
                var entries = idx.Select(i => _cache.Pool[i]).ToList();
                var prompts = entries.Select(e => e.Prompt).ToList();
                var (noise, z0, i0, _, masks) = _cache.Batch(idx, _pipe.Device);
                var z = _sampler.Sample(entries, noise, withGrad: true);
                var images = _sampler.ToImages(z);
                var terms = FocusNFixLoss.Compute(new LossBatch(images, z, i0, z0, masks, prompts), _reward, settings);
                var loss = terms.Loss / ((double)shards * micros);
                GradientCheckpoint.Backward(loss);
                var (inside, outside) = RegionConstraint.MeanChange(images.detach(), i0, masks);
                f[0] += loss.item<float>();
                f[1] += terms.Reward.mean().item<float>() / micros;
                f[2] += terms.Constraint.mean().item<float>() / micros;
                f[3] += inside.mean().item<float>() / micros;
                f[4] += outside.mean().item<float>() / micros;
                var perImage = RegionConstraint.PsnrOutside(images, i0, masks);
                for (int i = 0; i < perShard; i++)
                    imagePsnr[shard * imageSlots + micro * perShard + i] = i < perImage.Length ? Math.Min(perImage[i], PreservationBudget.PsnrCeiling) : double.NaN;
                var psnr = perImage.Where(v => !double.IsNaN(v)).Select(v => Math.Min(v, PreservationBudget.PsnrCeiling)).ToList();
                f[5] += (psnr.Count > 0 ? psnr.Average() : PreservationBudget.PsnrCeiling) / micros;
                if (keepImages && micro == 0)
                    kept.Add(images.detach().clone().DetachFromDisposeScope());
            }
            _shardedGradients?.Keep(shard);
        }
        if (_shardedGradients != null)
        {
            _allReduceSeconds += _shardedGradients.SumInto(Group);
            Group.AllReduceSum(figures);
            Group.AllReduceSum(imagePsnr);
        }
        var total = new double[ShardFigures];
        for (int shard = 0; shard < shards; shard++)
            for (int k = 0; k < ShardFigures; k++) total[k] += figures[shard * ShardFigures + k];
        // The loss was scaled per shard already; the other figures are means over the shards.
        for (int k = 1; k < ShardFigures; k++) total[k] /= shards;
        Tensor? lastImages = null;
        if (kept.Count > 0)
        {
            lastImages = cat(kept, 0).DetachFromDisposeScope();
            foreach (var t in kept) t.Dispose();
        }
        var measured = imagePsnr.Where(v => !double.IsNaN(v)).ToList();
        double median = measured.Count > 0 ? Median(measured) : PreservationBudget.PsnrCeiling;
        return new StepGradients(total[0], total[1], total[2], total[3], total[4], lastImages, total[5], median);
    }

    ShardedGradients? _shardedGradients;

    static double Median(List<double> values)
    {
        values.Sort();
        int n = values.Count;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }

    /// <summary>
    /// One optimiser step: gradients, clipping, the guarded AdamW update. Everything it creates lives in one dispose
    /// scope and it runs inside a <see cref="TorchGcPause"/>: a TorchSharp object left to the .NET garbage collector can be
    /// freed while libtorch still uses it (see <see cref="TorchGcPause"/>).
    /// </summary>
    public TrainStepLog TrainStep(int step, TensorBoardLog? tb = null)
    {
        var c = Config;
        using var pause = TorchGcPause.Begin();
        using var scope = NewDisposeScope();
        double lr = c.Optimizer.LearningRate * Math.Min(1.0, (step + 1.0) / Math.Max(1, c.Optimizer.WarmupSteps));
        Optimizer.LearningRate = lr;
        double lambda = Lambda;
        var g = ComputeGradients(step, keepImages: tb != null && c.Train.SampleEvery > 0 && step % c.Train.SampleEvery == 0);
        // grad_clip 0 means no clipping; the norm is still measured for the log and the guard.
        double gradNorm = nn.utils.clip_grad_norm_(Optimizer.Parameters, c.Optimizer.GradClip > 0 ? c.Optimizer.GradClip : double.PositiveInfinity);
        bool bad = !double.IsFinite(g.Loss) || !double.IsFinite(gradNorm);
        // The guard protects the weights: an update that would make any weight or moment non-finite is not applied.
        if (!bad && !Optimizer.Step()) bad = true;
        if (bad)
        {
            Optimizer.ZeroGrad();
            _skipped++;
        }
        // The dual variable reads what this step's images measured, whether or not its update was applied.
        double budgetPsnr = c.Constraint.Budget?.Statistic == BudgetStatistic.Median ? g.PsnrOutsideMedian : g.PsnrOutside;
        if (_budget != null && double.IsFinite(budgetPsnr)) _budget.Update(budgetPsnr, (step + 1.0) / c.Train.Steps);
        var entry = new TrainStepLog(step, g.Loss, g.Reward, g.Constraint, g.ChangeInside, g.ChangeOutside, gradNorm, lr, bad, _skipped, lambda, g.PsnrOutside,
            g.PsnrOutsideMedian);
        _run?.AppendLog(entry);
        // Test hook: one member of a group killed after a step (the others then wait in the next all-reduce).
        KillPoint.Reached("rank-step", $"{Group.Rank}:{step}");
        if (tb != null && step % Math.Max(1, c.Train.LogEvery) == 0)
        {
            tb.Scalar("train/loss", g.Loss, step);
            tb.Scalar("train/reward", g.Reward, step);
            tb.Scalar("train/constraint", g.Constraint, step);
            tb.Scalar("train/change_inside_mask", g.ChangeInside, step);
            tb.Scalar("train/change_outside_mask", g.ChangeOutside, step);
            tb.Scalar("train/grad_norm", double.IsFinite(gradNorm) ? gradNorm : -1, step);
            tb.Scalar("train/lr", lr, step);
            tb.Scalar("train/skipped_steps", _skipped, step);
            tb.Scalar("train/lambda", lambda, step);
            tb.Scalar("train/psnr_outside_mask", g.PsnrOutside, step);
            tb.Scalar("train/psnr_outside_mask_median", g.PsnrOutsideMedian, step);
            if (g.Images is not null) tb.Images("train/samples", g.Images, step);
        }
        g.Images?.Dispose();
        return entry;
    }

    /// <summary>Runs the remaining steps; returns the per-step log.</summary>
    public List<TrainStepLog> Train(Action<TrainStepLog>? onStep = null, TensorBoardLog? tb = null, int? stopAfter = null)
    {
        var c = Config;
        var logs = new List<TrainStepLog>();
        int end = stopAfter.HasValue ? Math.Min(c.Train.Steps, stopAfter.Value) : c.Train.Steps;
        for (int step = _startStep; step < end; step++)
        {
            if (_monitor != null && step % c.Train.Monitor!.Every == 0 && MonitorStep(step, tb)) return logs;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var entry = TrainStep(step, tb);
            _stepSeconds += clock.Elapsed.TotalSeconds;
            _timedSteps++;
            logs.Add(entry);
            onStep?.Invoke(entry);
            if (c.Train.CheckpointEvery > 0 && (step + 1) % c.Train.CheckpointEvery == 0 && step + 1 < c.Train.Steps)
                _run?.SaveCheckpoint(step + 1, _lora, Optimizer, _skipped, Config, ControlsState());
        }
        if (end == c.Train.Steps)
        {
            if (_monitor != null && _startStep < c.Train.Steps && MonitorStep(c.Train.Steps, tb)) return logs;
            if (_skipped >= c.Train.Steps)
                throw new TrainingFailedException($"{RunDir}: every one of the {c.Train.Steps} steps was skipped for a non-finite loss, gradient or update; no LoRA was written");
            using (var scope = NewDisposeScope())
                foreach (var (name, t) in _lora.StateDict())
                    if (!t.isfinite().all().item<bool>())
                        throw new TrainingFailedException($"{RunDir}: LoRA weight '{name}' is not finite at the end of training; no LoRA was written");
            // The final checkpoint comes first: a run killed while the LoRA files are written resumes from it (and
            // then has it already).
            if (_startStep < c.Train.Steps) _run?.SaveCheckpoint(c.Train.Steps, _lora, Optimizer, _skipped, Config, ControlsState());
            if (_budget != null) _run?.WriteFinalLambda(_budget, c.Constraint.Budget!, c.Train.Steps, stop: null);
            _run?.WriteLora(_lora, Config.Model);
        }
        // Every member returns once rank 0 has written the run (a rank 0 that failed to write aborts the job instead).
        Group.Barrier();
        return logs;
    }

    /// <summary>The budget's and the monitor's state for a checkpoint (null when the run has neither).</summary>
    string? ControlsState()
    {
        if (_budget is null && _monitor is null) return null;
        var states = new Dictionary<string, string>();
        if (_budget != null) states["budget"] = _budget.SaveState();
        if (_monitor != null) states["monitor"] = _monitor.SaveState();
        return JsonSerializer.Serialize(states);
    }

    public const string MonitorName = MonitorFile.Name;

    /// <summary>
    /// Evaluates the validation set at <paramref name="step"/> (once per step), logs it, keeps the best unflagged LoRA,
    /// and on a flag with train.stop_on_hacking ends the run with that LoRA; returns whether the run ended.
    /// </summary>
    bool MonitorStep(int step, TensorBoardLog? tb)
    {
        var c = Config;
        if (_monitor!.Points.Any(p => p.Step == step)) return false;
        using var pause = TorchGcPause.Begin();
        var (point, flag, images) = _monitor.Evaluate(step);
        using (images)
        {
            if (tb != null)
            {
                tb.Scalar("monitor/target_reward", point.TargetReward, step);
                foreach (var (name, v) in point.Guards) tb.Scalar($"monitor/{name}", v, step);
                tb.Scalar("monitor/psnr_outside_mask", Math.Min(point.PsnrOutside, PreservationBudget.PsnrCeiling), step);
                tb.Scalar("monitor/hacking_flag", flag is null ? 0 : 1, step);
                tb.Images("monitor/validation", images, step);
            }
        }
        if (_budget != null && c.Constraint.Budget!.CalibrateOnMonitor && _budget.Calibrate(point.PsnrOutside))
            tb?.Scalar("train/budget_target", _budget.Target, step);
        if (flag is null && _monitor.Rule.BestStep(_monitor.Points) == step)
        {
            if (_bestLora != null) foreach (var t in _bestLora.Values) t.Dispose();
            using var views = NewDisposeScope();
            _bestLora = _lora.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.clone().DetachFromDisposeScope());
            _bestStep = step;
            _bestLambda = _budget?.Lambda;
        }
        bool stop = flag != null && c.Train.StopOnHacking;
        if (stop && _bestLora != null) _lora.LoadStateDict(_bestLora, "best monitored LoRA");
        WriteMonitorFile(stop ? step : null);
        if (!stop) return false;
        // A stopped run is finished: its final checkpoint carries the kept LoRA, so --resume has nothing to continue.
        Run.SaveCheckpoint(c.Train.Steps, _lora, Optimizer, _skipped, Config, ControlsState());
        _stop = new MonitorStop(step, _bestStep ?? step, _bestStep is null ? null : _bestLambda);
        if (_budget != null) Run.WriteFinalLambda(_budget, c.Constraint.Budget!, c.Train.Steps, _stop);
        Run.WriteLora(_lora, Config.Model);
        return true;
    }

    void WriteMonitorFile(int? stoppedAt) => new MonitorFile(_monitor!.Points, _monitor.FirstFlag, _monitor.Rule.BestStep(_monitor.Points), stoppedAt,
        stoppedAt is null ? null : _bestStep, _monitor.Images).Write(Path.Combine(RunDir, MonitorName));

    /// <summary>The step whose LoRA a stopped run kept (null until the monitor kept one).</summary>
    public int? BestMonitoredStep => _bestStep;

    /// <summary>Steps dropped by the NaN/Inf guard so far.</summary>
    public int SkippedSteps => _skipped;

    public int StartStep => _startStep;

    /// <summary>Writes checkpoints/step-N now (the run writes them every train.checkpoint_every steps and at the end).</summary>
    public void SaveCheckpoint(int nextStep) => Run.SaveCheckpoint(nextStep, _lora, Optimizer, _skipped, Config, ControlsState());

    public void Dispose()
    {
        DisposeResources();
        _run?.Dispose();
    }

    // Null-safe: also undoes a constructor that failed half-way.
    void DisposeResources()
    {
        _cache?.Dispose();
        _monitor?.Dispose();
        _monitorSampler?.Dispose();
        foreach (var g in _guards) (g as IDisposable)?.Dispose();
        if (_bestLora != null) foreach (var t in _bestLora.Values) t.Dispose();
        Optimizer?.Dispose();
        _lora?.Dispose();
        _ownedHeatmap?.Dispose();
        _sampler?.Dispose();
        _pipe?.Dispose();
        if (_ownsReward) (_reward as IDisposable)?.Dispose();
    }
}
