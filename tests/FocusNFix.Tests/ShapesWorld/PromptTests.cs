using FocusNFix.ShapesWorld;
using Xunit;

namespace FocusNFix.Tests.ShapesWorld;

public class PromptTests
{
    static ShapesWorldBenchmark W => TestWorld.Default;

    [Fact]
    public void FormatsTheGrammar()
    {
        var d = new SceneDescription("gray", [new("red", "circle", "top left"), new("blue", "triangle", "bottom right")]);
        Assert.Equal("a red circle in the top left and a blue triangle in the bottom right on a gray background", PromptGrammar.Format(d));
        Assert.Equal("a green square in the center on a white background",
            PromptGrammar.Format(new SceneDescription("white", [new("green", "square", "center")])));
    }

    [Fact]
    public void ParseRoundTripsEverySampledScene()
    {
        for (int seed = 0; seed < 1000; seed++)
        {
            var scene = W.Sampler.Sample(seed);
            var parsed = PromptGrammar.Parse(scene.Prompt, W.Spec);
            Assert.Equal(scene.Description, parsed);
            Assert.Equal(scene.Background, parsed.Background);
            Assert.Equal(scene.Objects.Select(o => (o.Colour, o.Shape, o.Place)), parsed.Objects.Select(o => (o.Colour, o.Shape, o.Place)));
            Assert.InRange(scene.Objects.Count, 1, 3);
            Assert.Equal(scene.Objects.Count, scene.Objects.Select(o => o.Place).Distinct().Count());
        }
    }

    [Fact]
    public void ParseForgivesCaseSpacesAndAFinalPeriod()
    {
        var d = PromptGrammar.Parse("  A Red circle in the  top left and a blue square in the center on a SKY background. ", W.Spec);
        Assert.Equal(new SceneDescription("sky", [new("red", "circle", "top left"), new("blue", "square", "center")]), d);
    }

    [Theory]
    [InlineData("", "missing \"on a {colour} background\"")]
    [InlineData("a red circle in the top left", "missing \"on a {colour} background\"")]
    [InlineData("a red circle in the top left on a black background", "unknown background colour 'black'")]
    [InlineData("a teal circle in the top left on a gray background", "unknown shape colour 'teal'")]
    [InlineData("a red hexagon in the top left on a gray background", "unknown shape 'hexagon'")]
    [InlineData("a red circle in the middle on a gray background", "unknown place 'middle'")]
    [InlineData("a red circle at the top left on a gray background", "cannot read the object")]
    [InlineData("a red circle in the center and a blue square in the center on a gray background", "place 'center' is used twice")]
    [InlineData("a red circle in the top left and a red circle in the top right and a red circle in the bottom left and a red circle in the center on a gray background", "4 objects")]
    public void UnparsablePromptsNameThePromptAndTheProblem(string prompt, string problem)
    {
        var ex = Assert.Throws<InvalidInputException>(() => PromptGrammar.Parse(prompt, W.Spec));
        Assert.Contains($"prompt '{prompt}'", ex.Message);
        Assert.Contains(problem, ex.Message);
        Assert.False(PromptGrammar.TryParse(prompt, W.Spec, out _));
    }

    [Fact]
    public void SplitsAreDisjointAndHoldCombinationsOutOfTraining()
    {
        var spec = W.Spec;
        var s = spec.Splits;
        Assert.Equal(6, s.ValTriples.Count);
        Assert.Equal(6, s.TestTriples.Count);
        Assert.Empty(s.ValTriples.Intersect(s.TestTriples));
        var pools = new[] { s.TrainPrompts, s.ValPrompts, s.TestPrompts };
        Assert.Equal(pools.Sum(p => p.Count), pools.SelectMany(p => p).Distinct().Count());
        Assert.All(s.TrainPrompts, p => Assert.Equal(Split.Train, PromptSplits.SplitOf(spec, p)));
        Assert.All(s.ValPrompts, p => Assert.Equal(Split.Val, PromptSplits.SplitOf(spec, p)));
        Assert.All(s.TestPrompts, p => Assert.Equal(Split.Test, PromptSplits.SplitOf(spec, p)));

        // Training data drawn with the split never shows a held-out triple, yet covers every colour, shape, place
        // and every pair of them.
        var heldOut = s.ValTriples.Concat(s.TestTriples).ToHashSet();
        var trainTriples = new HashSet<PromptObject>();
        for (int seed = 0; seed < 2000; seed++)
        {
            var scene = W.Sampler.Sample(seed, Split.Train);
            Assert.Equal(Split.Train, PromptSplits.SplitOf(spec, scene.Description));
            foreach (var o in scene.Description.Objects) trainTriples.Add(o);
        }
        Assert.Empty(trainTriples.Intersect(heldOut));
        Assert.Equal(75 - 12, trainTriples.Count);
        Assert.Equal(15, trainTriples.Select(t => (t.Colour, t.Shape)).Distinct().Count());
        Assert.Equal(15, trainTriples.Select(t => (t.Shape, t.Place)).Distinct().Count());
        Assert.Equal(25, trainTriples.Select(t => (t.Colour, t.Place)).Distinct().Count());
        foreach (var t in s.TestTriples) Assert.Contains(s.TestPrompts, p => PromptGrammar.Parse(p, spec).Objects.Contains(t));
        Assert.All(spec.Shapes, shape => Assert.Equal(2, s.TestTriples.Count(t => t.Shape == shape)));
        Assert.Contains(s.TestPrompts, p => p.Contains("triangle"));

        Assert.Equal(Split.Val, W.Sampler.Sample(5, Split.Val) is var v ? PromptSplits.SplitOf(spec, v.Description) : Split.Train);
        Assert.Equal(Split.Test, PromptSplits.ParseSplit("TEST"));
        Assert.Contains("expected train, val or test", Assert.Throws<InvalidInputException>(() => PromptSplits.ParseSplit("dev")).Message);
    }

    [Fact]
    public void FromPromptDrawsThePromptedScene()
    {
        const string prompt = "a purple triangle in the top right and a green circle in the center on a sky background";
        var s = W.Sampler.FromPrompt(prompt, 9);
        Assert.Equal(prompt, s.Prompt);
        Assert.Equal(s.Prompt, W.Generate(prompt, 9).Prompt);
    }
}
