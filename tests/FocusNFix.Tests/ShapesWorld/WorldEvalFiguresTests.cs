using FocusNFix.ShapesWorld;
using Xunit;

namespace FocusNFix.Tests.ShapesWorld;

/// <summary>The world's evaluation figures (fnf world eval) and the evaluator's per-image oracle figures, on rendered scenes whose truth is known.</summary>
public class WorldEvalFiguresTests
{
    static ShapesWorldBenchmark W => TestWorld.Default;

    static WorldImageVerdict Verdict(int i, byte[] rgb, string prompt) => new(i, i, prompt, W.Judge(rgb, prompt));

    [Fact]
    public void FiguresCountRotResidueErasedRecolouredAndUndecidedShapes()
    {
        var scenes = Enumerable.Range(0, 200).Select(s => W.Generate(s)).ToList();
        var verdicts = scenes.Select((r, i) => Verdict(i, r.Rgb, r.Prompt)).ToList();
        var f = WorldEvalFigures.From(verdicts);
        Assert.Equal(200, f.Images);
        Assert.Equal(scenes.Count(r => r.HasRot) / 200.0, f.RotRate, 12);
        Assert.Equal(scenes.Count(r => r.HasHazard) / 200.0, f.HazardRate, 12);
        Assert.Equal(scenes.Count(r => r.HasGlitch) / 200.0, f.GlitchRate, 12);
        // On renders residue is exactly presence: clean pixels never come within the residue distance.
        Assert.Equal(f.RotRate, f.RotResidueRate);
        Assert.Equal(f.HazardRate, f.HazardResidueRate);
        Assert.Equal(0, f.ObjectErasedRate);
        Assert.Equal(0, f.ObjectRecolouredRate);
        Assert.Equal(1, f.ColourInPlaceAccuracy);
        Assert.Equal(1, f.ShapeAccuracyWhereDecided);
        Assert.True(f.ShapeDecidedRate >= 0.97, $"{f.ShapeDecidedRate}");
        Assert.True(f.AllObjectsCorrectRate <= f.AllObjectsCorrectUnlessShapeWrongRate);
        Assert.Equal(f.AllShapesDecidedRate, f.AllObjectsCorrectRate, 12);

        // Every object erased (a blank background) or recoloured (prompt names colours the image does not show).
        var blank = W.Renderer.Render(new Scene(0, scenes[0].Scene.Background, [], [], null));
        var erased = WorldEvalFigures.From([Verdict(0, blank.Rgb, scenes[0].Prompt)]);
        Assert.Equal(1, erased.ObjectErasedRate);
        Assert.Equal(0, erased.AllShapesDecidedRate);
        Assert.Equal(0, erased.AllObjectsCorrectRate);
        var r0 = scenes.First(r => r.Scene.Objects.Count == 1);
        var o = r0.Scene.Objects[0];
        var otherColour = W.Spec.ShapePalette.First(c => c.Name != o.Colour).Name;
        var recolouredPrompt = PromptGrammar.Format(new SceneDescription(r0.Scene.Background, [new PromptObject(otherColour, o.Shape, o.Place)]));
        var recoloured = WorldEvalFigures.From([Verdict(0, r0.Rgb, recolouredPrompt)]);
        Assert.Equal(1, recoloured.ObjectRecolouredRate);
        Assert.Equal(0, recoloured.ObjectErasedRate);

        var md = f.ToMarkdown();
        foreach (var row in new[] { "rot rate", "rot residue", "objects erased", "shape decided (per object)", "images with every shape decided" })
            Assert.Contains(row, md);

        // A world without rot reports its rot figures as n/a.
        var noRot = new ShapesWorldBenchmark(W.Spec.With(null, W.Spec.Captions));
        var g = WorldEvalFigures.From(scenes.Take(5).Select((r, i) => new WorldImageVerdict(i, i, r.Prompt, noRot.Judge(r.Rgb, r.Prompt))).ToList());
        Assert.True(double.IsNaN(g.RotRate));
        Assert.Contains("| rot rate | n/a |", g.ToMarkdown());
    }

    [Fact]
    public void PerImageOracleFiguresNameEveryKindAndJudgeARotFixAgainstTheOriginal()
    {
        var r = Enumerable.Range(0, 300).Select(s => W.Generate(s)).First(x => x.HasRot && !x.HasHazard);
        using var image = WorldImage.ToTensor(r.Rgb, r.Width, r.Height);
        var figures = W.OracleFigures(image, r.Prompt);
        Assert.Equal(1, figures["oracle_rot"]);
        Assert.Equal(1, figures["oracle_rot_residue"]);
        Assert.Equal(0, figures["oracle_hazard"]);
        Assert.Equal(r.HasGlitch ? 1 : 0, figures["oracle_glitch"]);
        Assert.Contains("oracle_all_shapes_decided", figures.Keys);

        var clean = W.Renderer.Render(r.Scene.Without(DefectKind.Rot));
        using var fixedImage = WorldImage.ToTensor(clean.Rgb, clean.Width, clean.Height);
        var against = W.OracleFigures(fixedImage, image, r.Prompt);
        Assert.Equal(1, against["oracle_rot_fixed"]);
        Assert.Equal(0, against["oracle_rot_erased"]);
        Assert.Equal(0, against["oracle_rot_left"]);
        Assert.Equal(0, against["oracle_rot_residue_share"]);
        Assert.True(double.IsNaN(against["oracle_hazard_residue_share"]));
        var self = W.OracleFigures(image, image, r.Prompt);
        Assert.Equal(1, self["oracle_rot_left"]);
        Assert.Equal(1, self["oracle_rot_residue_share"]);
        // Against an original without rot there is no rot outcome.
        Assert.True(double.IsNaN(W.OracleFigures(image, fixedImage, r.Prompt)["oracle_rot_fixed"]));

        // A world whose rot is gated off still names rot; a version 1 world has only hazard and glitch.
        var noRot = new ShapesWorldBenchmark(W.Spec.With(null, W.Spec.Captions));
        Assert.DoesNotContain("oracle_rot", noRot.OracleFigures(image, r.Prompt).Keys);
    }
}
