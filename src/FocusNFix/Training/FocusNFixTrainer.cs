using System.Text.Json;
using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>One logged training step (also the rows of the run's log.jsonl).</summary>
public sealed record TrainStepLog(int Step, double Loss, double Reward, double Constraint, double ChangeInside, double ChangeOutside,
    double GradNorm, double LearningRate, bool Skipped, int SkippedTotal);

/// <summary>
/// The Focus-N-Fix trainer: LoRA on the frozen base UNet, trained by backprop through the last K sampling steps
/// (DRaFT-K) to maximise the rewards while the region constraint keeps the image outside the mask as the original
/// model drew it. The objectives draft (lambda = 0) and global (mask all zeros) run through the same loop.
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
    public FocusNFixTrainer(TrainingConfig config, bool resume = false, Action<string, int, int>? progress = null,
        IReward? reward = null, IHeatmapSource? heatmapOverride = null, bool overwrite = false, Action<string>? warn = null)
    {
        Config = config;
        RunDir = config.OutputDir;
        if (resume && overwrite) throw new InvalidInputException($"{RunDir}: --resume and --overwrite exclude each other: continue the run or start it again");
        if (config.Threads > 0) set_num_threads(config.Threads);
        // Unset sampling settings become the model's recommended ones here, so the run folder records what was used.
        (config.Sampling.Steps, config.Sampling.GuidanceScale) = PipelineFolder.Open(config.Model).ResolveSampling(config.Sampling.Steps, config.Sampling.GuidanceScale);
        config.Validate($"training config (sampling resolved with {config.Model})");
        Run = RunFolder.Open(RunDir, resume ? RunStart.Resume : overwrite ? RunStart.Overwrite : RunStart.Fresh,
            config.Train.Cache == "disk" ? config.Train.CacheDir : null, warn ?? (m => Console.Error.WriteLine($"warning: {m}")));
        // A start that fails before training releases the folder, and a fresh one takes its files with it.
        using var unlessBuilt = new UnlessBuilt(this, abandon: !resume);
        var latest = resume ? ResumePoint() : null;
        Run.WriteConfig(config);

        manual_seed(config.Seed);
        _pipe = TextToImagePipeline.Load(config.Model, Placement.ParseDevice(config.Device, "device"), Placement.ParseDType(config.Dtype, "dtype"));
        if (config.Sampling.Scheduler is { } s) _pipe.UseScheduler(s);
        // PNDM's step returns no x0 prediction, and ReFL's image is one.
        if (config.Draft.Mode == "refl" && _pipe.Scheduler is Schedulers.PndmScheduler)
            throw new InvalidInputException($"draft.mode 'refl' needs a scheduler that predicts x0; {_pipe.Scheduler.ClassName} (sampling.scheduler {config.Sampling.Scheduler ?? "null: the pipeline's own"}) does not: choose ddim, ddpm, euler, euler-a or dpmpp-2m");
        foreach (var p in _pipe.Unet.parameters().Concat(_pipe.TextEncoder.parameters())) p.requires_grad = false;
        if (_pipe.Vae != null) foreach (var p in _pipe.Vae.parameters()) p.requires_grad = false;
        // With checkpointing the window's UNet recomputes and the differentiable VAE decode keep block inputs only.
        _pipe.ActivationCheckpointing = config.Draft.Checkpointing;

        _ownsReward = reward is null;
        _reward = reward ?? RewardFactory.CreateRewards(config.Rewards, _pipe.Device);
        _reward.To(_pipe.Device);
        var heatmap = heatmapOverride ?? RewardFactory.CreateHeatmap(config.Heatmap, _pipe.Device, _reward);
        _ownedHeatmap = heatmapOverride is null ? heatmap : null;
        heatmap.To(_pipe.Device);
        var pool = BuildPool(config);
        bool zeroMasks = config.Objective == "global";
        var cacheDir = config.Train.Cache == "disk" ? config.Train.CacheDir ?? Run.DefaultCacheDir : null;
        _sampler = new PoolSampler(_pipe, config.Sampling.Steps.Value, config.Sampling.GuidanceScale.Value, config.Sampling.Eta, Window(config.Draft));
        _cache = OriginalCache.Build(_sampler, pool, heatmap, config.Mask, zeroMasks, cacheDir,
            progress: (d, t) => progress?.Invoke("caching originals", d, t), key: heatmapOverride is null ? CacheKey(config) : null);
        Run.SaveOriginals(_cache);
        _active = Enumerable.Range(0, _cache.Pool.Count).Where(i => !config.Prompts.OnlyProblematic || _cache.IsProblematic(i)).ToList();
        if (_active.Count == 0) throw new InvalidInputException("prompts.only_problematic is set but no original image of the pool has a non-empty mask");

        using (var g = new Generator((ulong)config.Seed + 1))
            _lora = LoraNetwork.Attach(_pipe.Unet, new LoraConfig { Rank = config.Lora.Rank, Alpha = config.Lora.Alpha, TargetModules = config.Lora.TargetModules.ToArray() }, g);
        Optimizer = new AdamW(_lora.TrainableParameters(), config.Optimizer.LearningRate, config.Optimizer.WeightDecay);
        if (latest != null) (_startStep, _skipped) = Run.LoadCheckpoint(latest, _lora, Optimizer);
        if (resume) Run.TruncateLogs(_startStep);
        unlessBuilt.Built();
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
            if (abandon) trainer.Run.AbandonStart();
            else trainer.Run.Dispose();
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
    /// <summary>The run folder: config, logs, originals, checkpoints, final LoRA; locked while the trainer lives.</summary>
    public RunFolder Run { get; }
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
    public sealed record StepGradients(double Loss, double Reward, double Constraint, double ChangeInside, double ChangeOutside, Tensor? Images);

    /// <summary>
    /// Zeroes the LoRA gradients and accumulates step <paramref name="step"/>'s gradients over its micro-batches
    /// (the optimiser is not touched). A function of the LoRA weights and the step only, so repeating it from the same
    /// state gives the same gradients bit for bit.
    /// </summary>
    public StepGradients ComputeGradients(int step, bool keepImages = false)
    {
        var c = Config;
        var settings = LossSettings.FromConfig(c);
        using var pause = TorchGcPause.Begin();
        Optimizer.ZeroGrad();
        double lossSum = 0, rewardSum = 0, constraintSum = 0, inSum = 0, outSum = 0;
        Tensor? lastImages = null;
        for (int micro = 0; micro < c.Optimizer.GradAccumulation; micro++)
        {
            using var scope = NewDisposeScope();
            var idx = BatchIndices(step, micro);
            var entries = idx.Select(i => _cache.Pool[i]).ToList();
            var prompts = entries.Select(e => e.Prompt).ToList();
            var (noise, z0, i0, _, masks) = _cache.Batch(idx, _pipe.Device);
            var z = _sampler.Sample(entries, noise, withGrad: true);
            var images = _sampler.ToImages(z);
            var terms = FocusNFixLoss.Compute(new LossBatch(images, z, i0, z0, masks, prompts), _reward, settings);
            var loss = terms.Loss / c.Optimizer.GradAccumulation;
            GradientCheckpoint.Backward(loss);
            var (inside, outside) = RegionConstraint.MeanChange(images.detach(), i0, masks);
            lossSum += loss.item<float>();
            rewardSum += terms.Reward.mean().item<float>() / c.Optimizer.GradAccumulation;
            constraintSum += terms.Constraint.mean().item<float>() / c.Optimizer.GradAccumulation;
            inSum += inside.mean().item<float>() / c.Optimizer.GradAccumulation;
            outSum += outside.mean().item<float>() / c.Optimizer.GradAccumulation;
            if (keepImages && micro == 0)
                lastImages = images.detach().clone().DetachFromDisposeScope();
        }
        return new StepGradients(lossSum, rewardSum, constraintSum, inSum, outSum, lastImages);
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
        var entry = new TrainStepLog(step, g.Loss, g.Reward, g.Constraint, g.ChangeInside, g.ChangeOutside, gradNorm, lr, bad, _skipped);
        Run.AppendLog(entry);
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
            var entry = TrainStep(step, tb);
            logs.Add(entry);
            onStep?.Invoke(entry);
            if (c.Train.CheckpointEvery > 0 && (step + 1) % c.Train.CheckpointEvery == 0 && step + 1 < c.Train.Steps)
                Run.SaveCheckpoint(step + 1, _lora, Optimizer, _skipped, Config);
        }
        if (end == c.Train.Steps)
        {
            if (_skipped >= c.Train.Steps)
                throw new TrainingFailedException($"{RunDir}: every one of the {c.Train.Steps} steps was skipped for a non-finite loss, gradient or update; no LoRA was written");
            using (var scope = NewDisposeScope())
                foreach (var (name, t) in _lora.StateDict())
                    if (!t.isfinite().all().item<bool>())
                        throw new TrainingFailedException($"{RunDir}: LoRA weight '{name}' is not finite at the end of training; no LoRA was written");
            // The final checkpoint comes first: a run killed while the LoRA files are written resumes from it (and
            // then has it already).
            if (_startStep < c.Train.Steps) Run.SaveCheckpoint(c.Train.Steps, _lora, Optimizer, _skipped, Config);
            Run.WriteLora(_lora, Config.Model);
        }
        return logs;
    }

    /// <summary>Steps dropped by the NaN/Inf guard so far.</summary>
    public int SkippedSteps => _skipped;

    public int StartStep => _startStep;

    /// <summary>Writes checkpoints/step-N now (the run writes them every train.checkpoint_every steps and at the end).</summary>
    public void SaveCheckpoint(int nextStep) => Run.SaveCheckpoint(nextStep, _lora, Optimizer, _skipped, Config);

    public void Dispose()
    {
        DisposeResources();
        Run.Dispose();
    }

    // Null-safe: also undoes a constructor that failed half-way.
    void DisposeResources()
    {
        _cache?.Dispose();
        Optimizer?.Dispose();
        _lora?.Dispose();
        _ownedHeatmap?.Dispose();
        _sampler?.Dispose();
        _pipe?.Dispose();
        if (_ownsReward) (_reward as IDisposable)?.Dispose();
    }
}
