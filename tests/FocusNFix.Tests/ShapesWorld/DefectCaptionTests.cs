using FocusNFix.ShapesWorld;
using Xunit;

namespace FocusNFix.Tests.ShapesWorld;

/// <summary>Captions that name defects in the base model's training data, while plain prompts keep the world's rates.</summary>
public class DefectCaptionTests
{
    static ShapesWorldBenchmark W => TestWorld.Default;

    [Fact]
    public void AboutHalfOfDefectiveScenesAreNamedAndPlainPromptsKeepTheWorldsRates()
    {
        var sampler = new CaptionedSceneSampler(W);
        const int n = 3000;
        int plain = 0, plainGlitch = 0, plainRot = 0, plainTriangles = 0, plainTriangleHazards = 0;
        var carrying = new Dictionary<DefectKind, int>();
        var named = new Dictionary<DefectKind, int>();
        for (int seed = 0; seed < n; seed++)
        {
            var e = sampler.Draw(seed, Split.Train);
            var s = e.Scene.Scene;
            Assert.Equal(Split.Train, PromptSplits.SplitOf(W.Spec, s.Prompt));
            foreach (var k in s.Defects) carrying[k] = carrying.GetValueOrDefault(k) + 1;
            foreach (var k in e.NamedDefects)
            {
                named[k] = named.GetValueOrDefault(k) + 1;
                Assert.Contains(k, s.Defects);
                Assert.Contains(W.Spec.Captions.Phrase(k), e.Caption);
            }
            if (e.NamedDefects.Count > 0)
            {
                Assert.StartsWith(s.Prompt + " with ", e.Caption);
                continue;
            }
            Assert.Equal(s.Prompt, e.Caption);
            plain++;
            if (s.Glitch != null) plainGlitch++;
            if (s.Rot != null) plainRot++;
            for (int k = 0; k < s.Objects.Count; k++)
                if (s.Objects[k].Shape == "triangle") { plainTriangles++; if (s.Hazards.Any(h => h.ObjectIndex == k)) plainTriangleHazards++; }
        }
        // Plain prompts: the world's rates (glitch 0.25, rot 0.3 less the scenes without room, triangle hazard 0.7).
        Assert.InRange((double)plainGlitch / plain, 0.25 - 0.035, 0.25 + 0.035);
        Assert.InRange((double)plainRot / plain, 0.22, 0.33);
        Assert.InRange((double)plainTriangleHazards / plainTriangles, 0.70 - 0.05, 0.70 + 0.05);
        // About half of the scenes that carry a kind name it.
        foreach (var k in W.Spec.DefectKinds)
            Assert.InRange((double)named[k] / carrying[k], 0.40, 0.60);
        Assert.Contains(W.Spec.Captions.Caption("a red circle in the center on a gray background", [DefectKind.Rot, DefectKind.Hazard]),
            new[] { "a red circle in the center on a gray background with a hazard mark and rot" });
    }

    [Fact]
    public void WithCaptionsOffEveryExampleIsTheWorldsSceneWithItsPrompt()
    {
        var off = new ShapesWorldBenchmark(W.Spec.With(W.Spec.Rot, DefectCaptionSpec.None));
        var sampler = new CaptionedSceneSampler(off);
        for (int seed = 0; seed < 200; seed++)
        {
            var e = sampler.Draw(seed, Split.Train);
            var r = off.Generate(seed, Split.Train);
            Assert.Equal(r.Prompt, e.Caption);
            Assert.Empty(e.NamedDefects);
            Assert.Equal(r.Rgb, e.Scene.Rgb);
        }
    }

    [Fact]
    public void NamingProbabilityGivesTheShareAmongDefectiveScenes()
    {
        var c = DefectCaptionSpec.Default;
        foreach (var p in new[] { 0.03, 0.25, 0.7, 1.0 })
        {
            double q = c.NamingProbability(p);
            Assert.Equal(0.5, q / (q + (1 - q) * p), 12);
        }
        Assert.Equal(0, c.NamingProbability(0));
        Assert.Equal(0, DefectCaptionSpec.None.NamingProbability(0.7));
    }
}
