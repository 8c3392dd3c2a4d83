using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// Builds rewards and heatmap sources from their config entries (training configs, <c>fnf heatmap</c>, <c>fnf eval</c>),
/// each on the device of the pipeline it will judge.
/// </summary>
public static class RewardFactory
{
    public static readonly string[] RewardTypes = { "region-reward-model", "safety-checker", "aesthetic", "clip-score", "pick-score", "alignment-judge" };
    public static readonly string[] HeatmapTypes = { "reward-model", "saliency", "onnx", "torchscript", "mask-folder", "boxes" };

    /// <summary>
    /// Loads a region reward model folder (a reward that is also a heatmap source). The region reward model lives
    /// with the ShapesWorld models that are trained for it and registers itself here when the library loads, so the
    /// core does not depend on ShapesWorld.
    /// </summary>
    public static Func<string, IReward>? RegionRewardLoader { get; set; }

    /// <summary>
    /// Loads an alignment judge folder as a score (the ShapesWorld judge registers itself here). Not differentiable:
    /// a guard of the reward-hacking monitor and an evaluation figure, never a training reward.
    /// </summary>
    public static Func<string, IReward>? JudgeLoader { get; set; }

    static IReward LoadRegionReward(string path) =>
        (RegionRewardLoader ?? throw new InvalidOperationException("no region reward model loader is registered")).Invoke(path);

    /// <summary>Loads one reward and moves it to <paramref name="device"/>.</summary>
    public static IReward CreateReward(RewardSpec spec, Device device)
    {
        IReward reward = spec.Type switch
        {
            "region-reward-model" => LoadRegionReward(spec.Path),
            "safety-checker" => SafetyReward.FromPretrained(spec.Path),
            "aesthetic" => AestheticReward.FromPretrained(spec.Path, spec.Extra ?? throw new InvalidInputException("reward 'aesthetic' needs extra = the MLP .safetensors file")),
            "clip-score" => ClipScoreReward.FromPretrained(spec.Path, spec.Extra ?? spec.Path),
            "pick-score" => PickScoreReward.FromPretrained(spec.Path, spec.Extra ?? spec.Path),
            "alignment-judge" => (JudgeLoader ?? throw new InvalidOperationException("no alignment judge loader is registered")).Invoke(spec.Path),
            _ => throw new InvalidInputException($"reward type '{spec.Type}' is unknown (expected one of {string.Join(", ", RewardTypes)})"),
        };
        reward.To(device);
        return reward;
    }

    /// <summary>The weighted sum of the configured rewards on <paramref name="device"/> (a single reward with weight 1 is returned as it is).</summary>
    public static IReward CreateRewards(IReadOnlyList<RewardSpec> specs, Device device)
    {
        var parts = specs.Select(s => (CreateReward(s, device), s.Weight)).ToList();
        return parts.Count == 1 && parts[0].Weight == 1.0 ? parts[0].Item1 : new WeightedReward(parts, ownsParts: true);
    }

    /// <summary>
    /// Builds the heatmap source of <paramref name="spec"/> on <paramref name="device"/>. A saliency source maps
    /// <paramref name="firstReward"/> (borrowed: the caller still owns and disposes it) unless the spec names a region
    /// reward model folder of its own. The caller disposes the source.
    /// </summary>
    public static IHeatmapSource CreateHeatmap(HeatmapSpec spec, Device device, IReward? firstReward = null)
    {
        string NeedPath() => spec.Path ?? throw new InvalidInputException($"heatmap type '{spec.Type}' needs a path");
        IHeatmapSource source;
        switch (spec.Type)
        {
            case "reward-model":
                var model = LoadRegionReward(NeedPath());
                source = model as IHeatmapSource ?? throw new InvalidOperationException("the registered region reward model loader returned a reward without a heatmap");
                break;
            case "onnx":
                source = new OnnxHeatmapSource(NeedPath());
                break;
            case "torchscript":
                source = new TorchScriptHeatmapSource(NeedPath());
                break;
            case "mask-folder":
                source = new MaskFolderSource(NeedPath());
                break;
            case "boxes":
                source = new BoxesSource(NeedPath());
                break;
            case "saliency":
                if (spec.Method is not ("gradient-x-input" or "smoothgrad" or "grad-cam"))
                    throw new InvalidInputException($"saliency method '{spec.Method}' is unknown (expected gradient-x-input, smoothgrad or grad-cam)");
                bool owns = spec.Path != null;
                var reward = owns ? LoadRegionReward(spec.Path!)
                    : firstReward ?? throw new InvalidInputException("heatmap type 'saliency' needs a reward");
                if (spec.Method == "grad-cam" && reward is not IVisionTokenReward)
                {
                    if (owns) (reward as IDisposable)?.Dispose();
                    throw new InvalidInputException($"grad-cam needs a CLIP-based reward (safety-checker, aesthetic, clip-score, pick-score), not {reward.Name}");
                }
                source = spec.Method switch
                {
                    "grad-cam" => new GradCamSaliency((IVisionTokenReward)reward, ownsReward: owns),
                    "smoothgrad" => new GradientSaliency(reward, SaliencyMethod.SmoothGrad, ownsReward: owns),
                    _ => new GradientSaliency(reward, SaliencyMethod.GradientTimesInput, ownsReward: owns),
                };
                break;
            default:
                throw new InvalidInputException($"heatmap type '{spec.Type}' is unknown (expected one of {string.Join(", ", HeatmapTypes)})");
        }
        source.To(device);
        return source;
    }
}

/// <summary>Command-line spellings of rewards and heatmap sources: <c>TYPE:PATH[,EXTRA]</c>.</summary>
public static class SourceSpecs
{
    /// <summary><c>region-reward-model:DIR</c>, <c>safety-checker:DIR</c>, <c>aesthetic:CLIPDIR,MLP.safetensors</c>, <c>clip-score:DIR[,TOKENIZERDIR]</c>, <c>pick-score:DIR[,TOKENIZERDIR]</c>; optional <c>@WEIGHT</c> suffix.</summary>
    public static RewardSpec Reward(string text)
    {
        int colon = text.IndexOf(':');
        if (colon <= 0) throw new InvalidInputException($"reward '{text}': expected TYPE:PATH (types: {string.Join(", ", RewardFactory.RewardTypes)})");
        var type = text[..colon];
        var rest = text[(colon + 1)..];
        double weight = 1.0;
        int at = rest.LastIndexOf('@');
        if (at > 0 && double.TryParse(rest[(at + 1)..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var w)) { weight = w; rest = rest[..at]; }
        var parts = rest.Split(',', 2);
        if (!RewardFactory.RewardTypes.Contains(type)) throw new InvalidInputException($"reward '{text}': unknown type '{type}' (expected one of {string.Join(", ", RewardFactory.RewardTypes)})");
        return new RewardSpec { Type = type, Path = parts[0], Extra = parts.Length > 1 ? parts[1] : null, Weight = weight };
    }

    /// <summary><c>reward-model:DIR</c>, <c>onnx:FILE</c>, <c>torchscript:FILE</c>, <c>mask-folder:DIR</c>, <c>boxes:FILE</c>, <c>saliency:METHOD</c> (of the reward).</summary>
    public static HeatmapSpec Heatmap(string text)
    {
        int colon = text.IndexOf(':');
        if (colon <= 0) throw new InvalidInputException($"heatmap '{text}': expected TYPE:PATH or saliency:METHOD (types: {string.Join(", ", RewardFactory.HeatmapTypes)})");
        var type = text[..colon];
        var rest = text[(colon + 1)..];
        if (!RewardFactory.HeatmapTypes.Contains(type)) throw new InvalidInputException($"heatmap '{text}': unknown type '{type}' (expected one of {string.Join(", ", RewardFactory.HeatmapTypes)})");
        return type == "saliency" ? new HeatmapSpec { Type = type, Path = null, Method = rest } : new HeatmapSpec { Type = type, Path = rest };
    }
}
