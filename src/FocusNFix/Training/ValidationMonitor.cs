using System.Text.Json;
using FocusNFix.Masks;
using FocusNFix.Rewards;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary><c>train.monitor</c>: a fixed validation set sampled every N steps, and the rule that flags reward hacking.</summary>
public sealed class MonitorConfig
{
    /// <summary>Evaluate every N steps (and at step 0 and the end).</summary>
    public int Every { get; set; } = 10;
    /// <summary>A prompt file; null: <see cref="WorldSplit"/> of the world beside the model.</summary>
    public string? PromptsFile { get; set; }
    public string WorldSplit { get; set; } = "val";
    public int Limit { get; set; } = 8;
    /// <summary>The fixed seeds each prompt is sampled with (the same images every evaluation).</summary>
    public List<long> Seeds { get; set; } = new() { 1000 };
    /// <summary>Scores that must not drop while the target rises (e.g. the alignment judge).</summary>
    public List<RewardSpec> Guards { get; set; } = new();
    public double GuardMargin { get; set; } = 0.05;
    public double MinRewardGain { get; set; }
    /// <summary>Flag when the median PSNR outside the mask falls under this (dB); null: the budget's, if any.</summary>
    public double? MinPsnrOutside { get; set; }

    public string? Check(string prefix)
    {
        if (Every is < 1 or > 1_000_000) return $"{prefix}.every = {Every}: expected 1 to 1000000 steps";
        if (Limit is < 1 or > 100_000) return $"{prefix}.limit = {Limit}: expected 1 to 100000 prompts";
        if (Seeds is null || Seeds.Count == 0 || Seeds.Distinct().Count() != Seeds.Count) return $"{prefix}.seeds: expected one or more distinct seeds";
        if (Guards is null || Guards.Any(g => g is null)) return $"{prefix}.guards: expected a list of reward entries";
        foreach (var g in Guards)
            if (!RewardFactory.RewardTypes.Contains(g.Type)) return $"{prefix}.guards: type '{g.Type}': expected one of {string.Join(", ", RewardFactory.RewardTypes)}";
        if (!double.IsFinite(GuardMargin) || GuardMargin < 0) return $"{prefix}.guard_margin = {GuardMargin}: expected a finite margin >= 0";
        if (!double.IsFinite(MinRewardGain) || MinRewardGain < 0) return $"{prefix}.min_reward_gain = {MinRewardGain}: expected a finite gain >= 0";
        if (MinPsnrOutside is double p && (!double.IsFinite(p) || p <= 0)) return $"{prefix}.min_psnr_outside = {p}: expected a PSNR in dB above 0";
        return null;
    }
}

/// <summary>
/// The reward-hacking monitor: the same validation images (prompts x fixed seeds, sampled by the run's own loop
/// without gradients) evaluated at step 0 (the base model: the LoRA starts at zero) and every N steps with the
/// current LoRA, scored by the target reward and the guards, with the median PSNR outside the base images' masks.
/// The <see cref="HackingRule"/> flags an evaluation; the best unflagged one's LoRA is kept for stop-on-hacking.
/// </summary>
public sealed class ValidationMonitor : IDisposable
{
    readonly PoolSampler _sampler;
    readonly List<PoolEntry> _entries;
    readonly Tensor _noise;
    readonly IReward _target;
    readonly List<(string Name, IReward Reward)> _guards;
    readonly IHeatmapSource _heatmap;
    readonly MaskOptions _mask;
    Tensor? _baseImages, _baseMasks;
    readonly List<MonitorPoint> _points = new();

    public HackingRule Rule { get; }
    public IReadOnlyList<MonitorPoint> Points => _points;
    public HackingFlag? FirstFlag { get; private set; }

    /// <param name="sampler">samples the final images (not ReFL's x0) with the run's sampling settings.</param>
    /// <param name="guards">scored and owned by the caller.</param>
    public ValidationMonitor(PoolSampler sampler, IReadOnlyList<string> prompts, MonitorConfig config, IReward target,
        IReadOnlyList<(string Name, IReward Reward)> guards, IHeatmapSource heatmap, MaskOptions mask, double? budgetPsnr)
    {
        _sampler = sampler;
        _entries = prompts.Take(config.Limit).SelectMany((p, i) => config.Seeds.Select(s => new PoolEntry(i, p, s))).ToList();
        if (_entries.Count == 0) throw new InvalidInputException("train.monitor: no validation prompts");
        _noise = sampler.Noise(_entries).DetachFromDisposeScope();
        _target = target;
        _guards = guards.ToList();
        _heatmap = heatmap;
        _mask = mask;
        Rule = new HackingRule { GuardMargin = config.GuardMargin, MinRewardGain = config.MinRewardGain, MinPsnrOutside = config.MinPsnrOutside ?? budgetPsnr };
    }

    public int Images => _entries.Count;

    /// <summary>Samples and scores the validation set at <paramref name="step"/>; the first call must be with a zero LoRA (it defines the base images).</summary>
    public (MonitorPoint Point, HackingFlag? Flag, Tensor Images) Evaluate(int step)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var images = _sampler.ToImages(_sampler.Sample(_entries, _noise, withGrad: false)).detach();
        var prompts = _entries.Select(e => e.Prompt).ToList();
        if (_baseImages is null) SetBase(images);
        double Mean(Tensor t) => t.to(ScalarType.Float64).mean().item<double>();
        var guards = _guards.ToDictionary(g => g.Name, g => Mean(g.Reward.Score(images, prompts)));
        var psnr = RegionConstraint.PsnrOutside(images, _baseImages!, _baseMasks!).Where(v => !double.IsNaN(v)).OrderBy(v => v).ToArray();
        double median = psnr.Length == 0 ? double.NaN : psnr.Length % 2 == 1 ? psnr[psnr.Length / 2]
            : psnr[psnr.Length / 2 - 1] == psnr[psnr.Length / 2] ? psnr[psnr.Length / 2] : (psnr[psnr.Length / 2 - 1] + psnr[psnr.Length / 2]) / 2;
        var point = new MonitorPoint(step, Mean(_target.Score(images, prompts)), guards, median, clock.Elapsed.TotalSeconds);
        _points.Add(point);
        var flag = Rule.Check(_points[0], point);
        if (flag != null) FirstFlag ??= flag;
        return (point, flag, images.cpu().MoveToOuterDisposeScope());
    }

    public sealed record State(List<MonitorPoint> Points, HackingFlag? FirstFlag);

    public string SaveState() => JsonSerializer.Serialize(new State(_points, FirstFlag), StateJson);

    /// <summary>Restores the evaluations so far (a resumed run; its base images come from <see cref="SampleBase"/>).</summary>
    public void LoadState(string json, string source)
    {
        State? s;
        try { s = JsonSerializer.Deserialize<State>(json, StateJson); }
        catch (JsonException e) { throw new InvalidInputException($"{source}: not a monitor state ({e.Message})"); }
        _points.Clear();
        _points.AddRange(s?.Points ?? throw new InvalidInputException($"{source}: expected the monitor's evaluations"));
        FirstFlag = s.FirstFlag;
    }

    /// <summary>A resumed run's base images: sampled before the LoRA is attached (the trainer's order guarantees it).</summary>
    public void SampleBase()
    {
        if (_baseImages is not null) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        SetBase(_sampler.ToImages(_sampler.Sample(_entries, _noise, withGrad: false)).detach());
    }

    void SetBase(Tensor images)
    {
        _baseImages = images.clone().DetachFromDisposeScope();
        var heat = _heatmap.Compute(images, _entries.Select(e => new HeatmapKey(e.Prompt, e.PromptIndex, e.Seed)).ToList());
        _baseMasks = HeatmapMask.FromHeatmap(heat, _mask).detach().DetachFromDisposeScope();
    }

    static readonly JsonSerializerOptions StateJson = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public void Dispose()
    {
        _noise.Dispose();
        _baseImages?.Dispose();
        _baseMasks?.Dispose();
    }
}
