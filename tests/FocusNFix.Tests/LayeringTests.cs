using System.Text.RegularExpressions;
using Xunit;

namespace FocusNFix.Tests;

/// <summary>
/// The core never depends on ShapesWorld: only the World folder (the benchmark and the models trained for it) may name
/// its namespace or types. ShapesWorld plugs in through hooks (RewardFactory.RegionRewardLoader,
/// FocusNFixTrainer.WorldPromptSource, Evaluator's Oracle), so a dependency in the other direction is a cycle.
/// </summary>
public class LayeringTests
{
    static readonly Regex WorldReference = new(
        @"FocusNFix\.(ShapesWorld|WorldModels|Experiments)\b|\b(ShapesWorld|ShapesWorldBenchmark|PromptSplits|WorldSpec|RegionRewardModel|RegionRewardConfig|AlignmentJudge|OracleReport|SceneSampler|DemoPlan|BaseModelRecipe)\b",
        RegexOptions.Compiled);

    [Fact]
    public void CoreSourceDoesNotReferenceShapesWorld()
    {
        var src = Path.Combine(Golden.Root, "src", "FocusNFix");
        var world = new[] { "ShapesWorld", "WorldModels", "Experiments" }.Select(d => Path.Combine(src, d) + Path.DirectorySeparatorChar).ToArray();
        var offenders = new List<string>();
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            if (world.Any(w => file.StartsWith(w, StringComparison.Ordinal)) || file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")) continue;
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                var code = lines[i].TrimStart();
                if (code.StartsWith("//")) continue;
                int comment = code.IndexOf("//", StringComparison.Ordinal);
                if (comment >= 0) code = code[..comment];
                if (WorldReference.IsMatch(code)) offenders.Add($"{Path.GetRelativePath(src, file)}:{i + 1}: {code.Trim()}");
            }
        }
        Assert.True(offenders.Count == 0, "core files reference ShapesWorld:\n" + string.Join("\n", offenders));
    }

    [Fact]
    public void ShapesWorldRegistersItsHooksWhenTheLibraryLoads()
    {
        Assert.NotNull(FocusNFix.Rewards.RewardFactory.RegionRewardLoader);
        Assert.NotNull(FocusNFix.Training.FocusNFixTrainer.WorldPromptSource);
    }
}
