using FocusNFix.ShapesWorld;
using FocusNFix.Tests.Cli;
using Xunit;

namespace FocusNFix.Tests.ShapesWorld;

/// <summary>The fnf world commands with rot: spec, render, eval figures, train-reward refusals.</summary>
public class WorldRotCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-cli-rot-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    [Fact]
    public void SpecWritesAWorldWithRotAndRenderWritesItsMasks()
    {
        var world = Path.Combine(_tmp, "world.json");
        var r = CliProcess.Run("world", "spec", "--out", world);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Equal(WorldSpec.Default(), WorldSpec.Load(world));
        var render = CliProcess.Run("world", "render", "--world", world, "--count", "12", "--out", Path.Combine(_tmp, "render"));
        Assert.True(render.ExitCode == 0, render.Stdout + render.Stderr);
        var lines = File.ReadAllLines(Path.Combine(_tmp, "render", "scenes.jsonl"));
        Assert.Equal(12, lines.Length);
        Assert.Contains(lines, l => l.Contains("\"rot\":true"));
        Assert.True(File.Exists(Path.Combine(_tmp, "render", "0_rot.png")));

        // A world with rot gated off renders the rot mask too, always empty.
        var noRot = TinyWorld.Write(Path.Combine(_tmp, "no-rot.json"), trainPrompts: 2, testPrompts: 2, rotRate: 0);
        var gated = CliProcess.Run("world", "render", "--world", noRot, "--count", "2", "--out", Path.Combine(_tmp, "gated"));
        Assert.True(gated.ExitCode == 0, gated.Stdout + gated.Stderr);
        Assert.All(File.ReadAllLines(Path.Combine(_tmp, "gated", "scenes.jsonl")), l => Assert.Contains("\"rot\":false", l));
    }

    [Fact]
    public void TrainRewardRefusesRotWhereTheWorldCarriesNoneWithOneLine()
    {
        var models = Path.Combine(Golden.Root, "models", "shapesworld");
        var noRot = TinyWorld.Write(Path.Combine(_tmp, "no-rot.json"), trainPrompts: 2, testPrompts: 2, rotRate: 0);
        var r = CliProcess.Run("world", "train-reward", "--defect", "rot", "--world", noRot, "--base", Path.Combine(models, "base"),
            "--out", Path.Combine(_tmp, "reward-rot"), "--steps", "1");
        Assert.Equal(2, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains("rot rate is 0", lines[0]);
        var bad = CliProcess.Run("world", "train-reward", "--defect", "mould", "--out", Path.Combine(_tmp, "reward-mould"));
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("expected hazard, glitch or rot", bad.Stderr);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "reward-rot")));
    }
}
