using FocusNFix.ShapesWorld;
using Xunit;

namespace FocusNFix.Tests.ShapesWorld;

/// <summary>Rot, the large-area defect: where the sampler puts it, what the renderer draws, and the oracle's exact mask and fix verdicts.</summary>
public class RotTests
{
    static ShapesWorldBenchmark W => TestWorld.Default;

    static Rgb Pixel(RenderedScene r, int p) => new(r.Rgb[3 * p], r.Rgb[3 * p + 1], r.Rgb[3 * p + 2]);

    static IEnumerable<RenderedScene> RotScenes(int seeds) => Enumerable.Range(0, seeds).Select(s => W.Generate(s)).Where(r => r.Scene.Rot != null);

    [Fact]
    public void RotEatsThirtyToSixtyPercentOfOneObjectInsideItAndTheOracleMaskIsExact()
    {
        var spec = W.Spec;
        var lime = spec.Colours(DefectKind.Rot)[0].Rgb;
        int n = 0, size = spec.ImageSize, full = spec.SamplesPerAxis * spec.SamplesPerAxis;
        foreach (var r in RotScenes(1200))
        {
            n++;
            var rot = r.Scene.Rot!;
            var verdict = W.Oracle.Defect(r.Rgb, DefectKind.Rot);
            Assert.Equal(r.RotMask, verdict.Mask);
            Assert.True(verdict.Present);
            Assert.Equal(rot.Pixels.Count, r.RotMask.Count(b => b));
            Assert.All(rot.Pixels, p => Assert.Equal(lime, Pixel(r, p)));
            Assert.InRange(rot.AreaFraction, 0.3, 0.6);
            Assert.DoesNotContain(r.Scene.Hazards, h => h.ObjectIndex == rot.ObjectIndex);
            for (int p = 0; p < r.RotMask.Length; p++) Assert.False(r.RotMask[p] && (r.HazardMask[p] || r.GlitchMask[p]), $"seed {r.Scene.Seed}: rot under a stamp");
            // Hazard and glitch oracles do not see rot, and rot's oracle does not see them.
            Assert.Equal(r.HazardMask, W.Oracle.Defect(r.Rgb, DefectKind.Hazard).Mask);
            Assert.Equal(r.GlitchMask, W.Oracle.Defect(r.Rgb, DefectKind.Glitch).Mask);

            // Every rot pixel is fully covered by its object, so the fix is the scene without rot: the object's own colour
            // there and nothing outside the mask changes.
            var clean = W.Renderer.Render(r.Scene.Without(DefectKind.Rot));
            var colour = spec.ShapeColour(r.Scene.Objects[rot.ObjectIndex].Colour).Rgb;
            for (int p = 0; p < r.RotMask.Length; p++)
                if (r.RotMask[p]) Assert.Equal(colour, Pixel(clean, p));
                else Assert.Equal(Pixel(clean, p), Pixel(r, p));
            Assert.False(W.Oracle.Defect(clean.Rgb, DefectKind.Rot).HasResidue);

            // One 4-connected blob, large: at 32 px several dozen pixels.
            var set = rot.Pixels.ToHashSet();
            var seen = new HashSet<int> { rot.Pixels[0] };
            var stack = new Stack<int>(seen);
            while (stack.Count > 0)
            {
                int p = stack.Pop();
                foreach (int q in new[] { p - 1, p + 1, p - size, p + size })
                    if (set.Contains(q) && Math.Abs(q % size - p % size) <= 1 && seen.Add(q)) stack.Push(q);
            }
            Assert.Equal(set.Count, seen.Count);
            Assert.True(rot.Pixels.Count >= 12, $"seed {r.Scene.Seed}: only {rot.Pixels.Count} rot pixels");
        }
        // Rate 0.3 of images; a few scenes have no object without a hazard.
        Assert.InRange(n / 1200.0, 0.22, 0.33);
        Assert.Equal(full, spec.SamplesPerAxis * spec.SamplesPerAxis);
    }

    [Fact]
    public void RotDrawsFromItsOwnStreamSoEveryOtherPartOfEveryScene()
    {
        var without = new ShapesWorldBenchmark(W.Spec.With(null, W.Spec.Captions));
        for (int seed = 0; seed < 300; seed++)
        {
            var a = W.Generate(seed);
            var b = without.Generate(seed);
            Assert.Equal(b.Prompt, a.Prompt);
            Assert.Equal(b.HazardMask, a.HazardMask);
            Assert.Equal(b.GlitchMask, a.GlitchMask);
            for (int p = 0; p < a.RotMask.Length; p++)
                if (!a.RotMask[p]) Assert.True(a.Rgb[3 * p] == b.Rgb[3 * p] && a.Rgb[3 * p + 1] == b.Rgb[3 * p + 1] && a.Rgb[3 * p + 2] == b.Rgb[3 * p + 2]);
            Assert.Equal(b.Prompt, W.Sampler.FromPrompt(b.Prompt, seed).Prompt);
        }
    }

    [Fact]
    public void TheOracleTellsAFixFromErasingRecolouringAndReshaping()
    {
        var spec = W.Spec;
        int judged = 0, misshapen = 0, erasedCount = 0;
        foreach (var r in RotScenes(400).Take(60))
        {
            judged++;
            var s = r.Scene;
            var rot = s.Rot!;
            int k = rot.ObjectIndex;
            var obj = s.Objects[k];
            var mask = r.RotMask;
            Assert.Equal(k, W.Oracle.RotObject(r.Rgb, r.Prompt, mask));
            RotFixVerdict Judge(byte[] image) => W.Oracle.JudgeRotFix(image, r.Prompt, mask, k);

            Assert.Equal(RotOutcome.Rotten, Judge(r.Rgb).Outcome);
            var clean = W.Renderer.Render(s.Without(DefectKind.Rot));
            var fixedVerdict = Judge(clean.Rgb);
            Assert.True(fixedVerdict.IsFixed, $"seed {s.Seed}: clean render judged {fixedVerdict}");
            Assert.Equal(fixedVerdict, W.Oracle.JudgeRotFix(clean.Rgb, r.Rgb, r.Prompt));
            Assert.Equal(1.0, fixedVerdict.OwnColourShare);
            Assert.Equal(0.0, fixedVerdict.ResidueShare);

            // The object removed: the region shows the background (or an object it covered, which is no fix either).
            var erased = W.Renderer.Render(new Scene(s.Seed, s.Background, s.Objects.Where((_, i) => i != k), [], null));
            var erasedOutcome = Judge(erased.Rgb).Outcome;
            Assert.Contains(erasedOutcome, new[] { RotOutcome.Erased, RotOutcome.Recoloured });
            if (erasedOutcome == RotOutcome.Erased) erasedCount++;
            // Only the rot region painted with the background: eaten away, also erased.
            Assert.Equal(RotOutcome.Erased, Judge(Paint(r, mask, spec.BackgroundColour(s.Background).Rgb)).Outcome);
            // The object (or only the region) in another shape colour: recoloured.
            var other = spec.ShapePalette.First(c => c.Name != obj.Colour && s.Objects.All(o => o.Colour != c.Name));
            var recoloured = W.Renderer.Render(new Scene(s.Seed, s.Background, s.Objects.Select((o, i) => i == k ? o with { Colour = other.Name } : o), [], null));
            Assert.Equal(RotOutcome.Recoloured, Judge(recoloured.Rgb).Outcome);
            Assert.Equal(RotOutcome.Recoloured, Judge(Paint(r, mask, other.Rgb)).Outcome);
            // Repainted in its colour, but as a square where the prompt asks for a circle or triangle: not a fix.
            if (obj.Shape != "square")
            {
                var reshaped = W.Renderer.Render(new Scene(s.Seed, s.Background, s.Objects.Select((o, i) => i == k ? o with { Shape = "square" } : o), [], null));
                var v = Judge(reshaped.Rgb);
                Assert.False(v.IsFixed, $"seed {s.Seed}: a square for a {obj.Shape} judged fixed");
                if (v.Outcome == RotOutcome.Misshapen) misshapen++;
            }
        }
        Assert.Equal(60, judged);
        Assert.True(misshapen > 20, $"only {misshapen} reshaped objects judged misshapen");
        Assert.True(erasedCount > 45, $"only {erasedCount} of 60 removed objects judged erased");
    }

    [Fact]
    public void FaintOrHalfRemovedRotIsResidueNotPresence()
    {
        // On a red, blue, orange or purple object (a blend of lime and green 88 from lime still shows green).
        var r = RotScenes(200).First(x => x.Scene.Objects[x.Scene.Rot!.ObjectIndex].Colour != "green");
        var mask = r.RotMask;
        var lime = W.Spec.Colours(DefectKind.Rot)[0].Rgb;
        var colour = W.Spec.ShapeColour(r.Scene.Objects[r.Scene.Rot!.ObjectIndex].Colour).Rgb;
        // Each rot pixel moved from lime towards the object's colour until 88 away from lime: outside the mask distance
        // (80), inside the residue distance (95), far from every palette colour.
        double t = 88 / lime.DistanceTo(colour);
        var faint = new Rgb((byte)Math.Round(lime.R + t * (colour.R - lime.R)), (byte)Math.Round(lime.G + t * (colour.G - lime.G)), (byte)Math.Round(lime.B + t * (colour.B - lime.B)));
        var image = Paint(r, mask, faint);
        var verdict = W.Oracle.Defect(image, DefectKind.Rot);
        Assert.False(verdict.Present);
        Assert.Equal(0, verdict.PixelCount);
        Assert.Equal(mask.Count(b => b), verdict.ResiduePixels);
        Assert.True(verdict.HasResidue);
        Assert.Equal(1.0, W.Oracle.ResidueShare(image, DefectKind.Rot, mask));
        // A palette colour drawn slightly off towards lime is not residue: green moved 25 towards lime is 92 from it.
        var green = W.Spec.ShapeColour("green").Rgb;
        double u = 25 / lime.DistanceTo(green);
        var offGreen = new Rgb((byte)Math.Round(green.R + u * (lime.R - green.R)), (byte)Math.Round(green.G + u * (lime.G - green.G)), (byte)Math.Round(green.B + u * (lime.B - green.B)));
        Assert.InRange(offGreen.DistanceTo(lime), W.Spec.Oracle.ReservedDistance, W.Spec.Oracle.ResidueDistance);
        Assert.False(W.Oracle.Defect(Paint(r, mask, offGreen), DefectKind.Rot).HasResidue);
        var v = W.Oracle.JudgeRotFix(image, r.Prompt, mask, r.Scene.Rot!.ObjectIndex);
        Assert.Equal(1.0, v.ResidueShare);
        Assert.NotEqual(RotOutcome.Fixed, v.Outcome);
        // Half the blob left: still present, and half the mask is residue.
        var half = (byte[])image.Clone();
        var pixels = r.Scene.Rot!.Pixels;
        foreach (int p in pixels.Take(pixels.Count / 2)) { half[3 * p] = colour.R; half[3 * p + 1] = colour.G; half[3 * p + 2] = colour.B; }
        foreach (int p in pixels.Skip(pixels.Count / 2)) { half[3 * p] = lime.R; half[3 * p + 1] = lime.G; half[3 * p + 2] = lime.B; }
        Assert.True(W.Oracle.Defect(half, DefectKind.Rot).Present);
        Assert.Equal((pixels.Count - pixels.Count / 2) / (double)pixels.Count, W.Oracle.ResidueShare(half, DefectKind.Rot, mask), 12);
    }

    [Fact]
    public void BadRotQuestionsGiveClearErrors()
    {
        var r = RotScenes(200).First();
        Assert.Contains("empty rot mask", Assert.Throws<InvalidInputException>(() => W.Oracle.JudgeRotFix(r.Rgb, r.Prompt, new bool[r.RotMask.Length], 0)).Message);
        Assert.Contains("object index 7", Assert.Throws<InvalidInputException>(() => W.Oracle.JudgeRotFix(r.Rgb, r.Prompt, r.RotMask, 7)).Message);
        var noRot = new ShapesWorldBenchmark(W.Spec.With(null, W.Spec.Captions));
        Assert.Contains("no rot", Assert.Throws<InvalidInputException>(() => noRot.Oracle.JudgeRotFix(r.Rgb, r.Prompt, r.RotMask, 0)).Message);
        Assert.Null(noRot.Judge(r.Rgb, r.Prompt).Rot);
        // A reference without rot has nothing to judge a fix of.
        var clean = W.Renderer.Render(r.Scene.Without(DefectKind.Rot));
        Assert.Null(W.Oracle.JudgeRotFix(r.Rgb, clean.Rgb, r.Prompt));
    }

    static byte[] Paint(RenderedScene r, bool[] mask, Rgb c)
    {
        var img = (byte[])r.Rgb.Clone();
        for (int p = 0; p < mask.Length; p++)
            if (mask[p]) { img[3 * p] = c.R; img[3 * p + 1] = c.G; img[3 * p + 2] = c.B; }
        return img;
    }
}
