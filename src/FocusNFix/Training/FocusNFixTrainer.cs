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
    readonly DifferentiableSampler _sampler;
    readonly Tensor _uncond;
    readonly Dictionary<string, Tensor> _condCache = new();
    int _startStep;
    readonly bool _ownsReward;
    readonly IHeatmapSource? _ownedHeatmap;
    readonly List<int> _active;
    int _skipped;

    public const string FinalPeftName = RunFolderLora.DiffusersName;
    public const string FinalKohyaName = RunFolderLora.KohyaName;
    public const string LogName = "log.jsonl";

    /// <param name="reward">overrides the config's rewards (tests, custom rewards from code); moved to the pipeline's
    /// device, still owned by the caller.</param>
    /// <param name="heatmapOverride">overrides the config's heatmap source; moved to the pipeline's device, still owned
    /// by the caller.</param>
    public FocusNFixTrainer(TrainingConfig config, bool resume = false, Action<string, int, int>? progress = null,
        IReward? reward = null, IHeatmapSource? heatmapOverride = null)
    {
        Config = config;
        RunDir = config.OutputDir;
        if (config.Threads > 0) set_num_threads(config.Threads);
        Directory.CreateDirectory(RunDir);
        var latest = resume ? LatestCheckpoint(RunDir) : null;
        if (resume && latest == null) throw new InvalidInputException($"{RunDir}: --resume given but the run folder has no checkpoint");
        if (!resume && Directory.Exists(Path.Combine(RunDir, "checkpoints")) && Directory.EnumerateDirectories(Path.Combine(RunDir, "checkpoints")).Any())
            throw new InvalidInputException($"{RunDir}: the run folder already has checkpoints; pass --resume to continue it, or choose another output_dir");
        // Unset sampling settings become the model's recommended ones here, so the run folder records what was used.
        (config.Sampling.Steps, config.Sampling.GuidanceScale) = PipelineFolder.Open(config.Model).ResolveSampling(config.Sampling.Steps, config.Sampling.GuidanceScale);
        config.Validate($"training config (sampling resolved with {config.Model})");
        AtomicFile.WriteAllText(Path.Combine(RunDir, "config.json"), config.ToJson());

        manual_seed(config.Seed);
        _pipe = TextToImagePipeline.Load(config.Model, Placement.ParseDevice(config.Device, "device"), Placement.ParseDType(config.Dtype, "dtype"));
        if (config.Sampling.Scheduler is { } s) _pipe.UseScheduler(s);
        foreach (var p in _pipe.Unet.parameters().Concat(_pipe.TextEncoder.parameters())) p.requires_grad = false;
        if (_pipe.Vae != null) foreach (var p in _pipe.Vae.parameters()) p.requires_grad = false;

        _ownsReward = reward is null;
        _reward = reward ?? RewardFactory.CreateRewards(config.Rewards, _pipe.Device);
        _reward.To(_pipe.Device);
        var heatmap = heatmapOverride ?? RewardFactory.CreateHeatmap(config.Heatmap, _pipe.Device, _reward);
        _ownedHeatmap = heatmapOverride is null ? heatmap : null;
        heatmap.To(_pipe.Device);
        var pool = BuildPool(config);
        bool zeroMasks = config.Objective == "global";
        var cacheDir = config.Train.Cache == "disk" ? config.Train.CacheDir ?? Path.Combine(RunDir, "cache") : null;
        _cache = OriginalCache.Build(_pipe, pool, SamplingOptions(config), heatmap, config.Mask, zeroMasks, cacheDir,
            progress: (d, t) => progress?.Invoke("caching originals", d, t), key: heatmapOverride is null ? CacheKey(config) : null);
        SaveOriginals();
        _active = Enumerable.Range(0, _cache.Pool.Count).Where(i => !config.Prompts.OnlyProblematic || _cache.IsProblematic(i)).ToList();
        if (_active.Count == 0) throw new InvalidInputException("prompts.only_problematic is set but no original image of the pool has a non-empty mask");

        using (var g = new Generator((ulong)config.Seed + 1))
            _lora = LoraNetwork.Attach(_pipe.Unet, new LoraConfig { Rank = config.Lora.Rank, Alpha = config.Lora.Alpha, TargetModules = config.Lora.TargetModules.ToArray() }, g);
        _sampler = new DifferentiableSampler(_pipe)
        {
            Mode = config.Draft.Mode switch { "refl" => BackpropMode.Refl, "full" => BackpropMode.Full, _ => BackpropMode.DraftK },
            K = config.Draft.K, Checkpointing = config.Draft.Checkpointing,
            Steps = config.Sampling.Steps.Value, GuidanceScale = config.Sampling.GuidanceScale.Value,
        };
        using (no_grad()) _uncond = _pipe.EncodePrompts(new[] { "" }).DetachFromDisposeScope();
        Optimizer = new AdamW(_lora.TrainableParameters(), config.Optimizer.LearningRate, config.Optimizer.WeightDecay);
        if (latest != null) LoadCheckpoint(latest);
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
    public LoraNetwork Lora => _lora;
    public TextToImagePipeline Pipeline => _pipe;
    public OriginalCache Cache => _cache;

    static SampleOptions SamplingOptions(TrainingConfig c) => new() { Steps = c.Sampling.Steps!.Value, GuidanceScale = c.Sampling.GuidanceScale!.Value, Eta = c.Sampling.Eta };

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
            if (!File.Exists(file)) throw new InvalidInputException($"{file}: prompt file not found");
            prompts = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
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

    void SaveOriginals()
    {
        var dir = Path.Combine(RunDir, "originals");
        for (int i = 0; i < _cache.Pool.Count; i++)
        {
            var e = _cache.Pool[i];
            using var scope = NewDisposeScope();
            var c = _cache.Get(i);
            Images.SavePng(c.Image, Path.Combine(dir, $"{e.PromptIndex}_{e.Seed}.png"));
            Masks.HeatmapMask.SavePng(c.Mask, Path.Combine(dir, $"{e.PromptIndex}_{e.Seed}_mask.png"));
        }
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

    Tensor Cond(IReadOnlyList<string> prompts)
    {
        var parts = prompts.Select(p =>
        {
            if (!_condCache.TryGetValue(p, out var e))
                using (no_grad()) _condCache[p] = e = _pipe.EncodePrompts(new[] { p }).DetachFromDisposeScope();
            return e;
        }).ToList();
        return cat(parts, 0);
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
        double lambda = c.Objective == "draft" ? 0.0 : c.Constraint.Lambda;
        var norm = c.Constraint.Norm == "per-pixel" ? ConstraintNorm.PerPixel : ConstraintNorm.Frobenius;
        using var pause = TorchGcPause.Begin();
        Optimizer.ZeroGrad();
        double lossSum = 0, rewardSum = 0, constraintSum = 0, inSum = 0, outSum = 0;
        Tensor? lastImages = null;
        for (int micro = 0; micro < c.Optimizer.GradAccumulation; micro++)
        {
            using var scope = NewDisposeScope();
            var idx = BatchIndices(step, micro);
            var prompts = idx.Select(i => _cache.Pool[i].Prompt).ToList();
            var (noise, z0, i0, _, masks) = _cache.Batch(idx, _pipe.Device);
            var cond = Cond(prompts);
            var uncond = _uncond.expand(cond.shape);
            var z = _sampler.Sample(noise, cond, uncond);
            var images = (_pipe.DecodeRaw(z) / 2 + 0.5).clamp(0, 1);
            var reward = _reward.Score(images, prompts);
            var constraint = c.Constraint.Space == "latent"
                ? RegionConstraint.PerImage(z, z0, Masks.HeatmapMask.ResizeTo(masks, z.shape[2], z.shape[3]), norm)
                : RegionConstraint.PerImage(images, i0, masks, norm);
            var loss = (-reward + lambda * constraint).mean() / c.Optimizer.GradAccumulation;
            GradientCheckpoint.Backward(loss);
            var (inside, outside) = RegionConstraint.MeanChange(images.detach(), i0, masks);
            lossSum += loss.item<float>();
            rewardSum += reward.mean().item<float>() / c.Optimizer.GradAccumulation;
            constraintSum += constraint.mean().item<float>() / c.Optimizer.GradAccumulation;
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
        AppendLog(entry);
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
                SaveCheckpoint(step + 1);
        }
        if (end == c.Train.Steps)
        {
            if (_skipped >= c.Train.Steps)
                throw new TrainingFailedException($"{RunDir}: every one of the {c.Train.Steps} steps was skipped for a non-finite loss, gradient or update; no LoRA was written");
            using (var scope = NewDisposeScope())
                foreach (var (name, t) in _lora.StateDict())
                    if (!t.isfinite().all().item<bool>())
                        throw new TrainingFailedException($"{RunDir}: LoRA weight '{name}' is not finite at the end of training; no LoRA was written");
            // The final checkpoint comes first: a run killed while the LoRA files are written resumes from it.
            SaveCheckpoint(c.Train.Steps);
            RunFolderLora.Write(RunDir, _lora, Config.Model);
        }
        return logs;
    }

    /// <summary>Steps dropped by the NaN/Inf guard so far.</summary>
    public int SkippedSteps => _skipped;

    void AppendLog(TrainStepLog e) => JsonlLog.Append(Path.Combine(RunDir, LogName), e);

    static string? LatestCheckpoint(string runDir)
    {
        var dir = Path.Combine(runDir, "checkpoints");
        if (!Directory.Exists(dir)) return null;
        return Directory.GetDirectories(dir, "step-*").Where(d => File.Exists(Path.Combine(d, "state.json"))).OrderBy(d => d, StringComparer.Ordinal).LastOrDefault();
    }

    /// <summary>
    /// Writes LoRA weights, optimiser state, step, skip count and config into checkpoints/step-N, through a temporary
    /// folder and a rename, so a killed run never leaves a half-written checkpoint. Keeps the two newest.
    /// </summary>
    public void SaveCheckpoint(int nextStep)
    {
        var root = Path.Combine(RunDir, "checkpoints");
        Directory.CreateDirectory(root);
        var final = Path.Combine(root, $"step-{nextStep:D6}");
        var tmp = final + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        // The state dicts hold fresh handles (views, the step counter): disposed here, not left to the garbage collector.
        using (var scope = NewDisposeScope())
        {
            Safetensors.Save(Path.Combine(tmp, "lora_state.safetensors"), _lora.StateDict());
            Safetensors.Save(Path.Combine(tmp, "optimizer.safetensors"), Optimizer.StateDict());
        }
        File.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(new
        {
            step = nextStep,
            skipped_steps = _skipped,
            seed = Config.Seed,
            rng = "batches are a function of (seed, step) and the noise of each (prompt, seed) is cached; no global RNG state is consumed",
        }, TrainingConfig.Json));
        File.WriteAllText(Path.Combine(tmp, "config.json"), Config.ToJson());
        if (Directory.Exists(final)) Directory.Delete(final, true);
        Directory.Move(tmp, final);
        foreach (var old in Directory.GetDirectories(root, "step-*").Where(d => !d.EndsWith(".tmp")).OrderBy(d => d, StringComparer.Ordinal).SkipLast(2))
            Directory.Delete(old, true);
    }

    void LoadCheckpoint(string dir)
    {
        var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "state.json"))).RootElement;
        _startStep = state.GetProperty("step").GetInt32();
        _skipped = state.GetProperty("skipped_steps").GetInt32();
        using (var scope = NewDisposeScope())
        {
            _lora.LoadStateDict(Safetensors.Load(Path.Combine(dir, "lora_state.safetensors")), Path.Combine(dir, "lora_state.safetensors"));
            Optimizer.LoadStateDict(Safetensors.Load(Path.Combine(dir, "optimizer.safetensors")), Path.Combine(dir, "optimizer.safetensors"));
        }
        // Keep log.jsonl consistent with the resumed step: drop rows the checkpoint does not cover.
        var log = Path.Combine(RunDir, LogName);
        if (File.Exists(log))
        {
            var kept = File.ReadAllLines(log).Where(l => JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt32() < _startStep).ToList();
            AtomicFile.WriteAllText(log, kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        }
    }

    public int StartStep => _startStep;

    public void Dispose()
    {
        _cache.Dispose();
        Optimizer.Dispose();
        _lora.Dispose();
        _ownedHeatmap?.Dispose();
        _uncond.Dispose();
        foreach (var t in _condCache.Values) t.Dispose();
        _pipe.Dispose();
        if (_ownsReward) (_reward as IDisposable)?.Dispose();
    }
}
