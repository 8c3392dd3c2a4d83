using FocusNFix.Rewards;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;

namespace FocusNFix.WorldModels;

/// <summary>
/// Plugs ShapesWorld into the core when the library loads: the region reward model as the loader of the
/// <c>region-reward-model</c> reward and <c>reward-model</c> heatmap types, and the world's prompt splits as the
/// training pool when a config names no prompt file. The core (Training, Evaluation, Rewards) only knows the hooks,
/// so it does not depend on this benchmark.
/// </summary>
static class ShapesWorldRegistration
{
#pragma warning disable CA2255 // the hooks must be set before any config is used, whoever calls the library first
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void Register()
    {
        RewardFactory.RegionRewardLoader ??= path => RegionRewardModel.FromPretrained(path);
        RewardFactory.JudgeLoader ??= path => new JudgeReward(AlignmentJudge.FromPretrained(path));
        FocusNFixTrainer.WorldPromptSource ??= SplitPrompts;
    }
#pragma warning restore CA2255

    // The world.json beside the model folder defines the splits.
    static IReadOnlyList<string> SplitPrompts(string modelDir, string split) =>
        PromptSplits.Prompts(WorldSpec.Load(WorldFolder.WorldBeside(modelDir)), PromptSplits.ParseSplit(split));
}
