namespace FocusNFix.Rewards;

/// <summary>A reward entry of a training config (<c>rewards[]</c>) or a <c>TYPE:PATH</c> command-line spelling.</summary>
public sealed class RewardSpec
{
    /// <summary>region-reward-model (ShapesWorld reward-hazard/reward-glitch folders), safety-checker, aesthetic, clip-score or pick-score.</summary>
    public string Type { get; set; } = "region-reward-model";
    /// <summary>Model folder (or file) of the reward.</summary>
    public string Path { get; set; } = "models/shapesworld/reward-hazard";
    public double Weight { get; set; } = 1.0;
    /// <summary>Extra files some rewards need: the aesthetic MLP (.safetensors), the tokenizer folder of CLIP rewards.</summary>
    public string? Extra { get; set; }
}
