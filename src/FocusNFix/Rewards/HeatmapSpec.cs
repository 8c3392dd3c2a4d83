namespace FocusNFix.Rewards;

/// <summary>The heatmap source entry of a training config (<c>heatmap</c>) or a <c>TYPE:PATH</c> command-line spelling.</summary>
public sealed class HeatmapSpec
{
    /// <summary>
    /// reward-model (the region reward model's heatmap at Path), saliency (of the first reward: method below), onnx,
    /// torchscript, mask-folder (PNG masks named promptindex_seed.png) or boxes (a JSON file of boxes).
    /// </summary>
    public string Type { get; set; } = "reward-model";
    /// <summary>
    /// Null by default, resolved by type when the config is validated: reward-model takes the first reward's model
    /// when that is a region-reward-model; saliency takes the configured reward (a path here means a region reward
    /// model at that path instead); onnx, torchscript, mask-folder and boxes need it.
    /// </summary>
    public string? Path { get; set; }
    /// <summary>Saliency method: gradient-x-input, smoothgrad or grad-cam.</summary>
    public string Method { get; set; } = "gradient-x-input";
}
