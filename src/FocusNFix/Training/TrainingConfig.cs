using System.Text.Json;
using System.Text.Json.Serialization;
using FocusNFix.Masks;
using FocusNFix.Rewards;

namespace FocusNFix.Training;

/// <summary>
/// One Focus-N-Fix training run, as one JSON file (snake_case keys). Every field, its meaning and its default are
/// documented here and in README.md ("Training config"); <c>fnf train --print-config</c> prints the defaults.
/// </summary>
public sealed class TrainingConfig
{
    /// <summary>Pipeline folder (diffusers layout) of the frozen base model.</summary>
    public string Model { get; set; } = "models/shapesworld/base";
    /// <summary>focus-n-fix (region constraint), draft (lambda = 0) or global (mask all zeros: the whole image is kept).</summary>
    public string Objective { get; set; } = "focus-n-fix";
    /// <summary>Run folder: config copy, logs, checkpoints, final LoRA files.</summary>
    public string OutputDir { get; set; } = "runs/train";
    public long Seed { get; set; }
    public string Device { get; set; } = "cpu";
    public string Dtype { get; set; } = "float32";
    /// <summary>CPU threads for torch (0 = torch's default).</summary>
    public int Threads { get; set; }
    public PromptConfig Prompts { get; set; } = new();
    public SamplingConfig Sampling { get; set; } = new();
    public DraftConfig Draft { get; set; } = new();
    public LoraSection Lora { get; set; } = new();
    /// <summary>Rewards to maximise, summed with their weights.</summary>
    public List<RewardSpec> Rewards { get; set; } = new() { new RewardSpec() };
    /// <summary>Where the problem-region heatmaps of the original images come from.</summary>
    public HeatmapSpec Heatmap { get; set; } = new();
    /// <summary>
    /// Heatmap to mask. Heatmap sources already return values in [0,1] (probabilities, or saliency normalised per
    /// image), so normalise is off by default: min-max scaling a clean image's near-zero heatmap would invent a mask.
    /// </summary>
    public MaskOptions Mask { get; set; } = new() { Normalise = false };
    public ConstraintConfig Constraint { get; set; } = new();
    public OptimizerConfig Optimizer { get; set; } = new();
    public TrainLoopConfig Train { get; set; } = new();

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static TrainingConfig Load(string path)
    {
        var c = IO.StrictJson.Deserialize<TrainingConfig>(IO.InputFile.ReadAllText(path, "config file"), path, Json);
        c.Validate(path);
        return c;
    }

    public static readonly string[] Objectives = { "focus-n-fix", "draft", "global" };

    public void Validate(string source)
    {
        void Fail(string key, object? value, string expected) => throw new InvalidInputException(
            string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{source}: {key} = {Show(value)}: expected {expected}"));
        // A section given as null ("train": null) would otherwise surface as a NullReferenceException deep in training.
        foreach (var (name, section) in new (string, object?)[] { ("prompts", Prompts), ("sampling", Sampling), ("draft", Draft), ("lora", Lora),
                     ("rewards", Rewards), ("heatmap", Heatmap), ("mask", Mask), ("constraint", Constraint), ("optimizer", Optimizer), ("train", Train) })
            if (section is null) Fail(name, null, name == "rewards" ? "a list of reward objects" : "an object (or leave the key out for the defaults)");
        void Text(string key, string? value, string expected) { if (string.IsNullOrWhiteSpace(value)) Fail(key, value, expected); }
        Text("model", Model, "the path of a pipeline folder");
        Text("output_dir", OutputDir, "the path of the run folder");
        if (!Objectives.Contains(Objective)) Fail("objective", Objective, string.Join(", ", Objectives));
        void Finite(string key, double v, double min, double max, string expected)
        {
            if (!double.IsFinite(v) || v < min || v > max) Fail(key, v, expected);
        }
        void Count(string key, long v, long min, long max) { if (v < min || v > max) Fail(key, v, $"an integer from {min} to {max}"); }
        if (Dtype is not ("float32" or "bfloat16" or "float16")) Fail("dtype", Dtype, "float32, bfloat16 or float16");
        if (Device is null || !System.Text.RegularExpressions.Regex.IsMatch(Device, "^(cpu|cuda(:[0-9]+)?)$")) Fail("device", Device, "cpu, cuda or cuda:N");
        Count("threads", Threads, 0, 1024);
        Count("seed", Seed, 0, int.MaxValue);
        if (Prompts.File is not null) Text("prompts.file", Prompts.File, "the path of a prompt file, or null for the world's prompts");
        Text("prompts.world_split", Prompts.WorldSplit, "a split name: train, val or test");
        if (Prompts.Limit is int limit) Count("prompts.limit", limit, 1, 1_000_000);
        Count("prompts.seeds_per_prompt", Prompts.SeedsPerPrompt, 1, 1_000_000);
        if (Sampling!.Steps is int st) Count("sampling.steps", st, 1, 10_000);
        if (Sampling.GuidanceScale is double gs) Finite("sampling.guidance_scale", gs, 0, 1000, "a finite number from 0 to 1000 (or null: the model's recommended sampling)");
        Finite("sampling.eta", Sampling.Eta, 0, 1, "a number from 0 (deterministic DDIM) to 1");
        if (Sampling.Scheduler is { } scheduler && !Schedulers.SchedulerFactory.Names.Contains(scheduler))
            Fail("sampling.scheduler", scheduler, $"one of {string.Join(", ", Schedulers.SchedulerFactory.Names)}, or null for the pipeline's own");
        if (Draft!.Mode is not ("draft-k" or "refl" or "full")) Fail("draft.mode", Draft.Mode, "draft-k, refl or full");
        if (Draft.K < 1 || (Sampling.Steps is int steps && Draft.K > steps)) Fail("draft.k", Draft.K, $"between 1 and sampling.steps ({Sampling.Steps})");
        Count("lora.rank", Lora!.Rank, 1, 4096);
        Finite("lora.alpha", Lora.Alpha, double.Epsilon, 1e6, "a finite number > 0");
        if (Lora.TargetModules is null || Lora.TargetModules.Count == 0) Fail("lora.target_modules", Lora.TargetModules is null ? null : "[]", "a list of at least one module name");
        for (int i = 0; i < Lora.TargetModules!.Count; i++) Text($"lora.target_modules[{i}]", Lora.TargetModules[i], "a module name such as to_q");
        if (Rewards!.Count == 0) Fail("rewards", "[]", "at least one reward");
        for (int i = 0; i < Rewards.Count; i++)
        {
            if (Rewards[i] is null) Fail($"rewards[{i}]", null, "an object with type and path");
            Text($"rewards[{i}].type", Rewards[i].Type, $"one of {string.Join(", ", FocusNFix.Rewards.RewardFactory.RewardTypes)}");
            if (!FocusNFix.Rewards.RewardFactory.RewardTypes.Contains(Rewards[i].Type))
                Fail($"rewards[{i}].type", Rewards[i].Type, $"one of {string.Join(", ", FocusNFix.Rewards.RewardFactory.RewardTypes)}");
            if (Rewards[i].Type == "alignment-judge")
                Fail($"rewards[{i}].type", Rewards[i].Type, "a differentiable reward: the alignment judge has no gradient (use it as a train.monitor guard)");
            Text($"rewards[{i}].path", Rewards[i].Path, "the path of the reward's model");
            Finite($"rewards[{i}].weight", Rewards[i].Weight, -1e6, 1e6, "a finite number");
        }
        ResolveHeatmapPath(Fail);
        if (Constraint!.Norm is not ("frobenius" or "per-pixel")) Fail("constraint.norm", Constraint.Norm, "frobenius or per-pixel");
        if (Constraint.Space is not ("pixel" or "latent")) Fail("constraint.space", Constraint.Space, "pixel or latent");
        Finite("constraint.lambda", Constraint.Lambda, 0, 1e9, "a finite number >= 0");
        if (Constraint.Budget is { } budget)
        {
            if (budget.Check("constraint.budget") is { } budgetError) throw new InvalidInputException($"{source}: {budgetError}");
            if (Objective == "draft") Fail("constraint.budget", "set", "no budget for the draft objective, which has no constraint (use focus-n-fix or global)");
            if (Constraint.Space == "latent") Fail("constraint.budget", "set", "constraint.space pixel: the budget is a PSNR of images");
            if (budget.CalibrateOnMonitor && Train?.Monitor is null)
                Fail("constraint.budget.calibrate_on_monitor", "true", "train.monitor set as well: the calibration measures the monitor's held-out images");
            // The monitor's PSNR floor defaults to the budget, and the calibration steers the held-out PSNR onto the budget, so
            // half its evaluations would flag and the run would stop on its own controller's swings.
            if (budget.CalibrateOnMonitor && Train?.StopOnHacking == true && Train.Monitor is { MinPsnrOutside: null })
                Fail("train.monitor.min_psnr_outside", null, $"a PSNR floor under the budget ({budget.MinPsnrOutside:0.#} dB) when constraint.budget.calibrate_on_monitor and train.stop_on_hacking are both set: "
                    + "the floor defaults to the budget, which the calibration steers the monitor's images onto, so the run would stop on its controller's own swings");
        }
        Finite("optimizer.learning_rate", Optimizer!.LearningRate, double.Epsilon, 10, "a finite number > 0 and <= 10");
        Finite("optimizer.weight_decay", Optimizer.WeightDecay, 0, 1e3, "a finite number >= 0");
        Finite("optimizer.grad_clip", Optimizer.GradClip, 0, 1e12, "a finite number >= 0 (0: no clipping)");
        Count("optimizer.warmup_steps", Optimizer.WarmupSteps, 0, 10_000_000);
        Count("optimizer.grad_accumulation", Optimizer.GradAccumulation, 1, 100_000);
        Count("train.steps", Train!.Steps, 1, 100_000_000);
        Count("train.batch_size", Train.BatchSize, 1, 100_000);
        Count("train.log_every", Train.LogEvery, 1, 100_000_000);
        Count("train.sample_every", Train.SampleEvery, 0, 100_000_000);
        Count("train.checkpoint_every", Train.CheckpointEvery, 0, 100_000_000);
        if (Train.GradientShards is int shards && (shards < 1 || Train.BatchSize % shards != 0))
            Fail("train.gradient_shards", shards, $"a divisor of train.batch_size ({Train.BatchSize}): every shard holds the same number of images (or null: one shard per process)");
        if (Train.Monitor is { } monitor && monitor.Check("train.monitor") is { } monitorError) throw new InvalidInputException($"{source}: {monitorError}");
        if (Train.StopOnHacking && Train.Monitor is null) Fail("train.stop_on_hacking", true, "a train.monitor to say when to stop");
        if (Train.Cache is not ("memory" or "disk")) Fail("train.cache", Train.Cache, "memory or disk");
        if (Train.CacheDir is not null && Train.Cache != "disk") Fail("train.cache_dir", Train.CacheDir, "unset unless train.cache is disk");
        Text("train.cache", Train.Cache, "memory or disk");
        Mask.Validate($"{source}: mask.");
    }

    static string Show(object? value) => value switch
    {
        null => "null",
        string s => System.Text.Json.JsonSerializer.Serialize(s),
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "null",
    };

    // The heatmap path's default depends on its type: a fixed default once made a saliency config silently score the
    // ShapesWorld hazard model instead of the configured reward.
    void ResolveHeatmapPath(Action<string, object?, string> fail)
    {
        if (!FocusNFix.Rewards.RewardFactory.HeatmapTypes.Contains(Heatmap.Type)) fail("heatmap.type", Heatmap.Type, string.Join(", ", FocusNFix.Rewards.RewardFactory.HeatmapTypes));
        if (Heatmap.Path is not null) return;
        switch (Heatmap.Type)
        {
            case "reward-model":
                var region = Rewards.FirstOrDefault(r => r.Type == "region-reward-model");
                if (region is null) fail("heatmap.path", "null", "the folder of a region reward model (no reward of type region-reward-model to take it from)");
                Heatmap.Path = region!.Path;
                break;
            case "saliency":
                break;
            default:
                fail("heatmap.path", "null", $"the file or folder heatmap type '{Heatmap.Type}' reads");
                break;
        }
    }
}

public sealed class PromptConfig
{
    /// <summary>A text file with one prompt per line; null takes the world's split below.</summary>
    public string? File { get; set; }
    /// <summary>ShapesWorld split used when no file is given: train, val or test.</summary>
    public string WorldSplit { get; set; } = "train";
    /// <summary>Use only the first N prompts (null: all).</summary>
    public int? Limit { get; set; } = 64;
    /// <summary>Seeds per prompt in the training pool: (prompt, seed) pairs with seeds 0..N-1.</summary>
    public int SeedsPerPrompt { get; set; } = 4;
    /// <summary>Only prompts whose original image has a non-empty mask or all of them. Clean images teach "leave it alone".</summary>
    public bool OnlyProblematic { get; set; }
}

public sealed class SamplingConfig
{
    /// <summary>Denoising steps T (DDIM, eta below). Null: the model's recommended sampling (model_index.json's
    /// _focusnfix_sampling), else diffusers' pipeline default 50. The run folder's config.json records the value used.</summary>
    public int? Steps { get; set; }
    /// <summary>Classifier-free guidance scale (none at 1 or below). Null: the model's recommended sampling, else 7.5.</summary>
    public double? GuidanceScale { get; set; }
    public double Eta { get; set; }
    /// <summary>Scheduler by CLI name (null: the pipeline's own).</summary>
    public string? Scheduler { get; set; }
}

public sealed class DraftConfig
{
    /// <summary>draft-k: gradient through the last K steps; refl: through one step's predicted x0 at step T-K; full: every step (K = T).</summary>
    public string Mode { get; set; } = "draft-k";
    public int K { get; set; } = 2;
    /// <summary>Recompute each UNet call in backward instead of storing its activations (memory grows only by the saved inputs).</summary>
    public bool Checkpointing { get; set; } = true;
    /// <summary>
    /// Also recompute every resnet and transformer block of the UNet and the VAE decoder in backward, so the window
    /// keeps only block inputs: what Stable-Diffusion-sized models need to fit (fnf bench --preset); on small models it
    /// only costs one more forward per window step.
    /// </summary>
    public bool ActivationCheckpointing { get; set; }
}

public sealed class LoraSection
{
    public int Rank { get; set; } = 8;
    public double Alpha { get; set; } = 8;
    public List<string> TargetModules { get; set; } = new() { "to_q", "to_k", "to_v", "to_out.0" };
}

public sealed class ConstraintConfig
{
    /// <summary>lambda: weight of ||(1 - M) * (I - I0)|| (ignored by the draft objective, which uses 0).</summary>
    public double Lambda { get; set; } = 1.0;
    /// <summary>frobenius: the paper's unsquared Frobenius norm per image; per-pixel: sqrt of the mean squared masked difference (resolution-free).</summary>
    public string Norm { get; set; } = "frobenius";
    /// <summary>pixel: compare decoded images in [0,1]; latent: compare latents with the mask area-downsampled (no decode needed for the constraint).</summary>
    public string Space { get; set; } = "pixel";
    /// <summary>
    /// A preservation budget instead of a fixed lambda: the trainer adapts lambda (starting at <see cref="Lambda"/>)
    /// so the PSNR outside the mask stays at the budget. Null: lambda is fixed.
    /// </summary>
    public BudgetConfig? Budget { get; set; }
}

public sealed class OptimizerConfig
{
    public double LearningRate { get; set; } = 1e-3;
    public double WeightDecay { get; set; }
    public double GradClip { get; set; } = 1.0;
    public int WarmupSteps { get; set; } = 5;
    public int GradAccumulation { get; set; } = 1;
}

public sealed class TrainLoopConfig
{
    public int Steps { get; set; } = 60;
    public int BatchSize { get; set; } = 4;
    public int LogEvery { get; set; } = 1;
    /// <summary>A sample grid goes to TensorBoard every N steps (0: never).</summary>
    public int SampleEvery { get; set; } = 20;
    public int CheckpointEvery { get; set; } = 20;
    /// <summary>Where the cache of original images and masks lives: memory, or disk (under the run folder) for large pools.</summary>
    public string Cache { get; set; } = "memory";
    /// <summary>The reward-hacking monitor (null: off).</summary>
    public MonitorConfig? Monitor { get; set; }
    /// <summary>On a hacking flag, stop and keep the LoRA of the best evaluation that met the guards (needs a monitor).</summary>
    public bool StopOnHacking { get; set; }
    /// <summary>
    /// With cache = disk: the cache folder (default: cache/ in the run folder). Runs that name the same folder with
    /// the same model, pool, sampling, dtype, device, heatmap, mask and rewards reuse it instead of sampling the
    /// originals again.
    /// </summary>
    public string? CacheDir { get; set; }
    /// <summary>
    /// Computes each micro-batch as this many equal, fixed shards, one backward each, and adds their gradients in shard
    /// order. The gradient then does not depend on how many processes share the work: one process and any process
    /// count that divides it give the same LoRA bit for bit (same torch thread count per process). Null: one shard per
    /// process (1 without mpirun), which is the plain computation but changes with the process count.
    /// </summary>
    public int? GradientShards { get; set; }
}
