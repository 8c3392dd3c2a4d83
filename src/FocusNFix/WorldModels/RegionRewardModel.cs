using System.Text.Json;
using System.Text.Json.Nodes;
using FocusNFix.IO;
using FocusNFix.Rewards;
using FocusNFix.ShapesWorld;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FocusNFix.WorldModels;

/// <summary>
/// What a <see cref="RegionRewardModel"/> is: its defect kind and layers, and how its heatmap becomes a reward.
/// </summary>
/// <param name="Defect">The defect kind it detects.</param>
/// <param name="Channels">Output channels of each KxK convolution, in order; a 1x1 convolution to one logit follows.</param>
/// <param name="KernelSize">Odd kernel size of the convolutions (replicate padding keeps the size).</param>
/// <param name="RewardAreaPixels">The divisor of the reward: the pixel area of one defect stamp, so the reward reads
/// as minus the expected number of stamps.</param>
/// <param name="ScoreTopK">The image-level defect score is the mean of the K highest heatmap values (the oracle calls a
/// defect present from <see cref="OracleSpec.MinDefectPixels"/> pixels on).</param>
/// <param name="RewardForm">How the heatmap becomes the reward: <see cref="LogClean"/> (the default for new models) or
/// <see cref="ExpectedArea"/> (what a config without reward_form means).</param>
public sealed record RegionRewardConfig(DefectKind Defect, IReadOnlyList<int> Channels, int KernelSize = 3, double RewardAreaPixels = 16, int ScoreTopK = 4,
    string RewardForm = RegionRewardConfig.ExpectedArea)
{
    public const string ClassName = "FocusNFixRegionRewardModel";
    /// <summary>Reward = -(Σ h) / area: minus the expected defect area in stamps; bounded, but its gradient vanishes
    /// through the saturated sigmoid of a confident model (measured: |dR/dimage| ~ 0.05 on a rendered hazard).</summary>
    public const string ExpectedArea = "expected_area";
    /// <summary>Reward = Σ log(1 - h) / area = -(Σ softplus(logit)) / area: the log-probability that no pixel is a
    /// defect, in stamp areas. Gradient d/dlogit = -h, so a confident defect pixel pushes at full strength
    /// (measured: |dR/dimage| ~ 6 on the same hazard, 100x the expected-area form).</summary>
    public const string LogClean = "log_clean";

    /// <summary>The default for a world: 3 layers of 32 channels; the reward divisor is the defect stamp's area in that world.</summary>
    /// <remarks>For rot, the "stamp" is the mean rot blob (<see cref="RotSpec.ExpectedPixels"/>, rounded).</remarks>
    public static RegionRewardConfig For(WorldSpec spec, DefectKind defect) => new(defect, [32, 32, 32], 3,
        defect switch
        {
            DefectKind.Hazard => spec.HazardCellPx * spec.HazardCells * spec.HazardCellPx * spec.HazardCells,
            DefectKind.Glitch => spec.GlitchLongPx * spec.GlitchShortPx,
            _ => Math.Round((spec.Rot ?? throw new InvalidInputException("this world defines no rot defect (a version 1 world.json)")).ExpectedPixels(spec)),
        },
        spec.Oracle.MinDefectPixels, LogClean);

    public static string DefectName(DefectKind kind) => DefectKindNames.Name(kind);

    public static DefectKind ParseDefect(string name, string source) => DefectKindNames.Parse(name, source);

    internal void Validate(string source)
    {
        if (Channels.Count == 0 || Channels.Any(c => c < 1 || c > 4096))
            throw new InvalidInputException($"{source}: channels [{string.Join(", ", Channels)}]: expected one or more layer widths in 1..4096");
        if (KernelSize < 1 || KernelSize % 2 == 0 || KernelSize > 15)
            throw new InvalidInputException($"{source}: kernel_size {KernelSize}: expected an odd size in 1..15");
        if (!(RewardAreaPixels > 0) || double.IsInfinity(RewardAreaPixels))
            throw new InvalidInputException($"{source}: reward_area_pixels {RewardAreaPixels}: expected a positive number");
        if (ScoreTopK < 1) throw new InvalidInputException($"{source}: score_top_k {ScoreTopK}: expected at least 1");
        if (RewardForm is not (ExpectedArea or LogClean))
            throw new InvalidInputException($"{source}: reward_form '{RewardForm}': expected {LogClean} or {ExpectedArea}");
    }

    public string ToJson() => new JsonObject
    {
        ["_class_name"] = ClassName,
        ["defect"] = DefectName(Defect),
        ["channels"] = new JsonArray(Channels.Select(c => (JsonNode)c).ToArray()),
        ["kernel_size"] = KernelSize,
        ["activation"] = "silu",
        ["padding"] = "replicate",
        ["reward_area_pixels"] = RewardAreaPixels,
        ["score_top_k"] = ScoreTopK,
        ["heatmap"] = "sigmoid(logit) per pixel: probability that the pixel belongs to the defect (the oracle's reserved-colour mask)",
        ["reward_form"] = RewardForm,
        ["reward"] = RewardForm == LogClean
            ? "sum over pixels of log(1 - heatmap) / reward_area_pixels = -(sum of softplus(logit)) / reward_area_pixels"
            : "-(sum of heatmap over the image) / reward_area_pixels",
        ["defect_score"] = "mean of the score_top_k largest heatmap values",
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    public static RegionRewardConfig FromJson(JsonConfig c)
    {
        var cls = c.String("_class_name");
        if (cls != ClassName)
            throw new InvalidInputException($"{c.Source}: _class_name is '{cls ?? "missing"}', not a region reward model (expected '{ClassName}')" +
                (cls == JudgeConfig.ClassName ? "; this folder holds an alignment judge: load it with AlignmentJudge.FromPretrained" : ""));
        var cfg = new RegionRewardConfig(
            ParseDefect(c.RequireString("defect"), c.Source),
            c.IntList("channels") ?? throw new InvalidInputException($"{c.Source}: required key 'channels' is missing"),
            c.Int("kernel_size", 3), c.Double("reward_area_pixels", 16), c.Int("score_top_k", 4), c.String("reward_form", ExpectedArea)!);
        if (c.String("activation", "silu") != "silu") throw new InvalidInputException($"{c.Source}: activation '{c.String("activation")}': only silu is supported");
        if (c.String("padding", "replicate") != "replicate") throw new InvalidInputException($"{c.Source}: padding '{c.String("padding")}': only replicate is supported");
        cfg.Validate(c.Source);
        return cfg;
    }
}

/// <summary>
/// A region reward model (the RAHF analogue of ShapesWorld): a small fully-convolutional network that gives, for every
/// pixel, the probability that it belongs to one defect kind (the heatmap), and a differentiable image-level reward
/// derived from it. Layers: KxK convolutions with replicate padding and SiLU (full resolution, no pooling, so the map is
/// pixel-exact at any image size), then a 1x1 convolution to one logit per pixel.
/// <list type="bullet">
/// <item>Heatmap h = sigmoid(logit), [B,1,H,W] in (0,1).</item>
/// <item>Reward (<see cref="Score"/>), by the config's reward_form, with A = reward_area_pixels, the area of one defect
/// stamp (16 px for the default 4x4 hazard checker, 15 px for the 5x3 glitch), so 0 is a clean image:
/// log_clean (default): R = Σ_pixels log(1 - h) / A = -Σ softplus(logit) / A, the log-probability that no pixel is a
/// defect; a stamp the model is sure of scores about -8. Its gradient w.r.t. a logit is -h / A, so it does not vanish
/// where the model is confident, which is where the defect is.
/// expected_area: R = -(Σ_pixels h) / A, minus the expected number of stamps (-1 about one stamp); bounded and
/// readable, but the sigmoid's saturation leaves ~1% of the log form's gradient, too little to compete with a
/// preservation constraint.</item>
/// <item>Defect score (<see cref="DefectScore"/>, for detection and AUC) = mean of the score_top_k largest heatmap
/// values: a single stray pixel cannot fire it, a real stamp (at least 4 px) does.</item>
/// </list>
/// Inputs are images [B,3,H,W] in [0,1]; prompts are ignored (the model is not text-conditioned).
/// </summary>
public sealed class RegionRewardModel : nn.Module<Tensor, Tensor>, IReward, IHeatmapSource
{
    public const string ConfigFile = "config.json", WeightsBase = "model";

    readonly ModuleList<Conv2d> convs = new();
    readonly Conv2d head;

    public RegionRewardConfig Config { get; }

    public RegionRewardModel(RegionRewardConfig config) : base(nameof(RegionRewardModel))
    {
        config.Validate("region reward config");
        Config = config;
        long inCh = 3;
        foreach (var c in config.Channels)
        {
            convs.Add(nn.Conv2d(inCh, c, config.KernelSize));
            inCh = c;
        }
        head = nn.Conv2d(inCh, 1, 1);
        RegisterComponents();
    }

    public string Name => RegionRewardConfig.DefectName(Config.Defect);

    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>Per-pixel defect logits [B,1,H,W] for images [B,3,H,W] in [0,1] (on the model's device and dtype).</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        int pad = Config.KernelSize / 2;
        // Centred input; replicate padding, because zero padding would read as black, a hazard colour, at the border.
        var x = images * 2 - 1;
        foreach (var conv in convs)
        {
            if (pad > 0) x = F.pad(x, new long[] { pad, pad, pad, pad }, PaddingModes.Replicate);
            x = F.silu(conv.call(x));
        }
        return head.call(x).MoveToOuterDisposeScope();
    }

    (ScalarType Dtype, Device Device) WeightPlace()
    {
        var w = head.weight!;
        return (w.dtype, w.device);
    }

    Tensor ToModel(Tensor images, string who)
    {
        RewardInputs.CheckImages(images, who);
        var (dtype, device) = WeightPlace();
        return images.dtype == dtype && images.device == device ? images.alias() : images.to(dtype, device);
    }

    /// <summary>[B,1,H,W] in (0,1) on the images' device and dtype; differentiable with respect to the images.</summary>
    public Tensor Heatmap(Tensor images)
    {
        using var scope = NewDisposeScope();
        var h = forward(ToModel(images, $"{Name} region reward")).sigmoid();
        if (h.dtype != images.dtype || h.device != images.device) h = h.to(images.dtype, images.device);
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>The heatmap as a heatmap source: the model is not text-conditioned, so the keys only size the batch.</summary>
    public Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys)
    {
        HeatmapKey.CheckBatch(images, keys, $"{Name} region reward");
        return Heatmap(images);
    }

    /// <summary>Moves the weights to <paramref name="device"/> (dtype unchanged).</summary>
    public void To(Device device) => this.to(device);

    /// <summary>Reward [B] by the config's reward_form (see the class), on the model's device and dtype; differentiable.</summary>
    public Tensor Score(Tensor images, IReadOnlyList<string> prompts)
    {
        using var scope = NewDisposeScope();
        var logits = forward(ToModel(images, $"{Name} region reward"));
        var perPixel = Config.RewardForm == RegionRewardConfig.LogClean ? nn.functional.softplus(logits) : logits.sigmoid();
        return (perPixel.sum(new long[] { 1, 2, 3 }) * (-1.0 / Config.RewardAreaPixels)).MoveToOuterDisposeScope();
    }

    /// <summary>Image-level defect score [B] in (0,1): mean of the score_top_k largest heatmap values (model's device and dtype).</summary>
    public Tensor DefectScore(Tensor images)
    {
        using var scope = NewDisposeScope();
        var h = forward(ToModel(images, $"{Name} region reward")).sigmoid().flatten(1);
        int k = (int)Math.Min(Config.ScoreTopK, h.shape[1]);
        return h.topk(k, dim: 1).values.mean(new long[] { 1 }).MoveToOuterDisposeScope();
    }

    /// <summary>Writes config.json and model.safetensors (float32), each atomically.</summary>
    public void SavePretrained(string folder)
    {
        Directory.CreateDirectory(folder);
        var weights = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();
        foreach (var (k, v) in state_dict()) weights[k] = v.detach().to(float32).cpu();
        Safetensors.Save(Path.Combine(folder, WeightsBase + ".safetensors"), weights,
            new Dictionary<string, string> { ["format"] = "pt", ["focusnfix_class"] = RegionRewardConfig.ClassName });
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFile), Config.ToJson() + "\n");
    }

    /// <summary>
    /// Loads a folder written by <see cref="SavePretrained"/> (strict weights) on the CPU, frozen (no parameter requires
    /// grad) and in eval mode, as a reward is a judge: gradients still reach the images.
    /// </summary>
    public static RegionRewardModel FromPretrained(string folder) => RewardInputs.Load("region reward model", folder, () =>
    {
        IO.InputFile.RequireFolder(folder, "folder");
        var config = RegionRewardConfig.FromJson(JsonConfig.Load(Path.Combine(folder, ConfigFile)));
        var model = new RegionRewardModel(config);
        StateDict.LoadFile(model, WeightFiles.Find(folder, WeightsBase));
        RewardInputs.Freeze(model);
        return model;
    });
}
