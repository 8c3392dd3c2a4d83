using System.Text.RegularExpressions;

namespace FocusNFix.ShapesWorld;

public sealed partial class WorldSpec
{
    static readonly string[] GrammarWords = ["a", "and", "in", "the", "on", "background"];

    /// <summary>
    /// Checks that the world is self-consistent and that the oracle can be exact on it; throws
    /// <see cref="InvalidInputException"/> naming the offending entry. Among others: every palette colour lies at
    /// least 100 from every reserved colour, and the whole convex hull of the palette (every anti-aliased blend)
    /// lies farther than the oracle's reserved distance (+1 for byte rounding) from every reserved colour.
    /// </summary>
    public void Validate()
    {
        void Fail(string what) => throw new InvalidInputException($"world spec: {what}");
        if (ImageSize < 8 || ImageSize > 4096) Fail($"image_size {ImageSize}: expected 8..4096");
        if (BackgroundPalette.Count == 0 || ShapePalette.Count == 0) Fail("palettes must not be empty");
        if (HazardColours.Count != 2) Fail($"hazard needs exactly 2 colours, got {HazardColours.Count}");
        if (GlitchColours.Count != 2) Fail($"glitch needs exactly 2 colours, got {GlitchColours.Count}");
        if (Rot is { Colours.Count: < 1 }) Fail("rot needs at least 1 colour");

        var allColours = BackgroundPalette.Concat(ShapePalette).Concat(ReservedColours).ToList();
        foreach (var c in allColours)
            if (!Regex.IsMatch(c.Name, "^[a-z]+$") || GrammarWords.Contains(c.Name)) Fail($"colour name '{c.Name}': expected one lower-case word, not a grammar word");
        foreach (var dup in allColours.GroupBy(c => c.Name).Where(g => g.Count() > 1)) Fail($"colour name '{dup.Key}' is used twice");

        if (Shapes.Count == 0) Fail("no shapes");
        foreach (var s in Shapes)
            if (!KnownShapes.Contains(s)) Fail($"shape '{s}': the renderer draws only {string.Join(", ", KnownShapes)}");
        if (Shapes.Distinct().Count() != Shapes.Count) Fail("shapes listed twice");
        foreach (var (shape, rate) in HazardRateByShape)
        {
            if (!Shapes.Contains(shape)) Fail($"hazard rate for unknown shape '{shape}'");
            if (!(rate >= 0 && rate <= 1)) Fail($"hazard rate {rate} for '{shape}': expected 0..1");
        }
        if (!(GlitchRate >= 0 && GlitchRate <= 1)) Fail($"glitch rate {GlitchRate}: expected 0..1");
        if (Rot is { } rot)
        {
            if (rot.Colours.Count < 1) Fail("rot needs at least 1 colour");
            if (!(rot.Rate >= 0 && rot.Rate <= 1)) Fail($"rot rate {rot.Rate}: expected 0..1");
            if (!(rot.MinAreaFraction > 0 && rot.MinAreaFraction <= rot.MaxAreaFraction && rot.MaxAreaFraction <= 1))
                Fail($"rot area_fraction [{rot.MinAreaFraction}, {rot.MaxAreaFraction}]: expected 0 < min <= max <= 1");
        }
        if (!(Captions.ShareOfDefectiveScenes >= 0 && Captions.ShareOfDefectiveScenes < 1))
            Fail($"defect_captions.share_of_defective_scenes {Captions.ShareOfDefectiveScenes}: expected 0 <= share < 1 (1 would leave no plain prompt with the defect)");
        foreach (var kind in DefectKinds)
            if (!Captions.Phrases.TryGetValue(kind, out var phrase) || !Regex.IsMatch(phrase, "^[a-z]+( [a-z]+)*$"))
                Fail($"defect_captions.phrases.{DefectKindNames.Name(kind)}: expected lower-case words separated by single spaces");
        if (Captions.Phrases.Values.Distinct().Count() != Captions.Phrases.Count) Fail("defect_captions.phrases: a phrase is used for two kinds");

        if (!(ShapeSizeMin > 0 && ShapeSizeMin <= ShapeSizeMax)) Fail($"shape size range {ShapeSizeMin}..{ShapeSizeMax}");
        if (!(CenterJitter >= 0)) Fail($"center jitter {CenterJitter}");
        if (SamplesPerAxis < 1 || SamplesPerAxis > 16) Fail($"samples_per_axis {SamplesPerAxis}: expected 1..16");
        if (HazardCellPx < 1 || HazardCells < 2) Fail($"hazard checker {HazardCells} cells of {HazardCellPx} px: expected >= 2 cells of >= 1 px");
        if (GlitchLongPx < 2 || GlitchShortPx < 1) Fail($"glitch patch {GlitchLongPx}x{GlitchShortPx}: expected long >= 2, short >= 1");
        if (MinObjects < 1 || MinObjects > MaxObjects || MaxObjects > Places.Count)
            Fail($"objects per scene {MinObjects}..{MaxObjects}: expected 1 <= min <= max <= number of places ({Places.Count})");

        double reach = ShapeSizeMax / 2 + CenterJitter;
        foreach (var p in Places)
        {
            if (!Regex.IsMatch(p.Name, "^[a-z]+( [a-z]+)*$") || p.Name.Split(' ').Any(GrammarWords.Contains))
                Fail($"place name '{p.Name}': expected lower-case words separated by single spaces, no grammar words");
            if (p.X0 < 0 || p.Y0 < 0 || p.X1 > ImageSize || p.Y1 > ImageSize || p.X0 >= p.X1 || p.Y0 >= p.Y1)
                Fail($"place '{p.Name}' box [{p.X0},{p.Y0},{p.X1},{p.Y1}) is empty or outside the {ImageSize}px canvas");
            if (p.CenterX - reach < p.X0 || p.CenterX + reach > p.X1 || p.CenterY - reach < p.Y0 || p.CenterY + reach > p.Y1)
                Fail($"place '{p.Name}' box [{p.X0},{p.Y0},{p.X1},{p.Y1}) does not hold every object (centre ({p.CenterX},{p.CenterY}) +- {reach})");
            if (OwnRegionArea(p) == 0) Fail($"place '{p.Name}' has no pixels outside the other places' boxes");
        }
        if (Places.Select(p => p.Name).Distinct().Count() != Places.Count) Fail("place names listed twice");

        var o = Oracle;
        if (!(o.ReservedDistance > 0 && o.ColourDistance > 0 && o.MinDefectPixels >= 1 && o.MinPlaceFraction > 0 && o.MinPlaceFraction <= 1
              && o.MinBackgroundFraction > 0 && o.MinBackgroundFraction <= 1))
            Fail($"oracle thresholds {o}: expected positive distances, min_defect_pixels >= 1, fractions in (0, 1]");

        var reserved = ReservedColours.ToList();
        foreach (var (a, b) in Pairs(reserved))
            if (a.Rgb.DistanceTo(b.Rgb) <= 2 * o.ReservedDistance) Fail($"reserved colours {a.Name} and {b.Name} are closer than 2 x reserved_distance");
        var palette = BackgroundPalette.Concat(ShapePalette).ToList();
        foreach (var c in palette)
            foreach (var r in reserved)
                if (c.Rgb.DistanceTo(r.Rgb) < 100) Fail($"palette colour {c.Name} {c.Rgb} lies within 100 of reserved colour {r.Name} {r.Rgb}");
        if (!(o.ResidueDistance >= o.ReservedDistance)) Fail($"oracle residue_distance {o.ResidueDistance}: expected >= reserved_distance ({o.ReservedDistance})");
        foreach (var r in reserved)
        {
            if (!HullFartherThan(palette.Select(c => c.Rgb).ToList(), r.Rgb, o.ResidueDistance + 1))
                Fail($"a blend of palette colours comes within residue_distance + 1 = {o.ResidueDistance + 1} of reserved colour {r.Name} {r.Rgb}");
        }
        // Residue is attributed to a kind by distance, so no pixel may be residue of two kinds.
        foreach (var (ka, kb) in Pairs(DefectKinds))
            foreach (var a in Colours(ka))
                foreach (var b in Colours(kb))
                    if (a.Rgb.DistanceTo(b.Rgb) <= 2 * o.ResidueDistance)
                        Fail($"reserved colours {a.Name} and {b.Name} of different kinds are closer than 2 x residue_distance ({2 * o.ResidueDistance})");
        foreach (var (a, b) in Pairs(palette))
            if (a.Rgb.DistanceTo(b.Rgb) <= 2 * o.ColourDistance)
                Fail($"palette colours {a.Name} {a.Rgb} and {b.Name} {b.Rgb} are closer than 2 x colour_distance ({2 * o.ColourDistance})");

        // Anti-aliased edges blend a shape colour with the background; no such blend may show another shape colour.
        foreach (var c in ShapePalette)
            foreach (var s in ShapePalette.Where(s => s != c))
                foreach (var b in BackgroundPalette)
                    if (SegmentDistance(s.Rgb, b.Rgb, c.Rgb) <= o.ColourDistance)
                        Fail($"blends of {s.Name} {s.Rgb} with background {b.Name} {b.Rgb} come within colour_distance of {c.Name} {c.Rgb}");

        var names = new HashSet<PromptObject>();
        foreach (var t in Splits.ValTriples.Concat(Splits.TestTriples))
        {
            ShapeColour(t.Colour); Place(t.Place);
            if (!Shapes.Contains(t.Shape)) Fail($"split triple '{t}': unknown shape");
            if (!names.Add(t)) Fail($"split triple '{t}' is held out twice");
        }
        var seen = new HashSet<string>();
        foreach (var (split, list) in new[] { (Split.Train, Splits.TrainPrompts), (Split.Val, Splits.ValPrompts), (Split.Test, Splits.TestPrompts) })
            foreach (var prompt in list)
            {
                if (!seen.Add(prompt)) Fail($"prompt '{prompt}' is listed twice");
                var actual = PromptSplits.SplitOf(this, PromptGrammar.Parse(prompt, this));
                if (actual != split) Fail($"prompt '{prompt}' is listed under {split} but the split rule puts it in {actual}");
            }
    }

    /// <summary>Pixels of the place's box that lie in no other place's box.</summary>
    public int OwnRegionArea(PlaceSpec p)
    {
        int n = 0;
        for (int y = p.Y0; y < p.Y1; y++)
            for (int x = p.X0; x < p.X1; x++)
                if (IsOwnPixel(p, x, y)) n++;
        return n;
    }

    public bool IsOwnPixel(PlaceSpec p, int x, int y)
    {
        if (!p.Contains(x, y)) return false;
        foreach (var q in Places) if (!ReferenceEquals(q, p) && q.Name != p.Name && q.Contains(x, y)) return false;
        return true;
    }

    static IEnumerable<(T, T)> Pairs<T>(IReadOnlyList<T> items)
    {
        for (int i = 0; i < items.Count; i++)
            for (int j = i + 1; j < items.Count; j++) yield return (items[i], items[j]);
    }

    /// <summary>
    /// True when the convex hull of <paramref name="points"/> is provably farther than <paramref name="threshold"/> from
    /// <paramref name="q"/>: Frank-Wolfe on 1/2 |x - q|^2 over the hull, whose duality gap gives a lower bound.
    /// </summary>
    public static bool HullFartherThan(IReadOnlyList<Rgb> points, Rgb q, double threshold)
    {
        var p = points.Select(c => new[] { (double)c.R - q.R, (double)c.G - q.G, (double)c.B - q.B }).ToArray();
        var x = (double[])p[0].Clone();
        for (int it = 0; it < 100000; it++)
        {
            double fx = 0.5 * Dot(x, x);
            int best = 0;
            for (int i = 1; i < p.Length; i++) if (Dot(x, p[i]) < Dot(x, p[best])) best = i;
            double gap = Dot(x, x) - Dot(x, p[best]);
            double lower = Math.Sqrt(2 * Math.Max(0, fx - gap));
            if (lower > threshold) return true;
            if (Math.Sqrt(2 * fx) <= threshold) return false;
            var d = new[] { p[best][0] - x[0], p[best][1] - x[1], p[best][2] - x[2] };
            double dd = Dot(d, d);
            if (dd == 0) return Math.Sqrt(2 * fx) > threshold;
            double t = Math.Clamp(-Dot(x, d) / dd, 0, 1);
            for (int k = 0; k < 3; k++) x[k] += t * d[k];
        }
        return false;
    }

    static double SegmentDistance(Rgb a, Rgb b, Rgb q)
    {
        double[] d = [b.R - a.R, b.G - a.G, b.B - a.B], w = [q.R - a.R, q.G - a.G, q.B - a.B];
        double t = Math.Clamp(Dot(w, d) / Math.Max(1e-12, Dot(d, d)), 0, 1);
        return Rgb.Distance(a.R + t * d[0], a.G + t * d[1], a.B + t * d[2], q);
    }

    static double Dot(double[] a, double[] b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
