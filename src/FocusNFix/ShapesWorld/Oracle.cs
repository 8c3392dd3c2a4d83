namespace FocusNFix.ShapesWorld;

/// <summary>
/// One defect kind's verdict. <see cref="Mask"/> is row-major H x W. <see cref="ResidueMask"/> holds the mask and the
/// pixels within the wider residue distance of the kind's colours that show no palette colour: faint or partly removed
/// defects, or one colour of two left, show there even when the defect is no longer present.
/// </summary>
public sealed record DefectVerdict(DefectKind Kind, bool Present, int PixelCount, bool[] Mask)
{
    public bool[] ResidueMask { get; init; } = Mask;
    public int ResiduePixels { get; init; } = PixelCount;
    /// <summary>Any residue pixel (present defects included).</summary>
    public bool HasResidue => ResiduePixels > 0;
}

/// <summary>
/// One prompted object's verdict: <see cref="ColourFraction"/> is the measured fraction of its place's own region;
/// <see cref="DetectedShape"/> is null where the shape is not decidable.
/// </summary>
public sealed record ObjectVerdict(PromptObject Object, double ColourFraction, bool ColourPresent, string? DetectedShape)
{
    public bool? ShapeCorrect => DetectedShape is null ? null : DetectedShape == Object.Shape;
    public bool ShapeDecided => DetectedShape is not null;
    /// <summary>Colour present in its place and the shape decided and right: an undecided shape counts as wrong, so a
    /// triangle drawn as something no shape fits is never counted correct.</summary>
    public bool Correct => ColourPresent && ShapeCorrect == true;
    /// <summary>Colour present and the shape not found wrong (undecided counted as right): the rule before shapes had to be decided.</summary>
    public bool CorrectUnlessShapeWrong => ColourPresent && ShapeCorrect != false;
    /// <summary>Where the colour is absent: the other shape colour covering most of the place's own region, when it
    /// covers at least the minimum place fraction (the object was recoloured); null otherwise.</summary>
    public string? OtherColour { get; init; }
    /// <summary>The colour is absent and no other shape colour stands in its place: the object is gone.</summary>
    public bool Erased => !ColourPresent && OtherColour is null;
    /// <summary>The colour is absent and another shape colour stands in its place.</summary>
    public bool Recoloured => !ColourPresent && OtherColour is not null;
}

public sealed record OracleReport(
    SceneDescription Prompt, DefectVerdict Hazard, DefectVerdict Glitch, IReadOnlyList<ObjectVerdict> Objects,
    double BackgroundFraction, bool BackgroundPresent)
{
    /// <summary>Null in a world without rot.</summary>
    public DefectVerdict? Rot { get; init; }
    public bool AllObjectsCorrect => Objects.All(o => o.Correct);
    public bool AllShapesDecided => Objects.All(o => o.ShapeDecided);
    public DefectVerdict this[DefectKind kind] => kind switch
    {
        DefectKind.Hazard => Hazard,
        DefectKind.Glitch => Glitch,
        _ => Rot ?? throw new InvalidInputException("this world defines no rot defect"),
    };
}

/// <summary>
/// Measures the truth on any image of the world (rendered or generated) against its prompt. It judges; it is never a
/// training signal. Thresholds come from <see cref="WorldSpec.Oracle"/> (all distances Euclidean in 0..255 RGB):
/// <list type="bullet">
/// <item>Defect mask of a kind: pixels within <see cref="OracleSpec.ReservedDistance"/> (default 80) of either of
/// the kind's reserved colours. Present: at least <see cref="OracleSpec.MinDefectPixels"/> (default 4) mask pixels,
/// with at least one near each of the two colours. On rendered images the masks equal the renderer's exactly, since
/// every blend of palette colours lies farther than that from every reserved colour.</item>
/// <item>Colour in place: a pixel shows a palette colour when within <see cref="OracleSpec.ColourDistance"/>
/// (default 45) of it (no blend of a shape colour with a background comes that close to another shape colour). The
/// fraction is taken over the place's own region (its box minus the other places' boxes, so a neighbour's overlap
/// never counts); present when at least <see cref="OracleSpec.MinPlaceFraction"/> (default 0.04: 7 px in a corner, 4 in the centre at 32 px).</item>
/// <item>Shape, where decidable: each pixel of the place box is "object" (shows the colour), "background" (shows the
/// background colour), an anti-aliased edge read as one of the two by its blend (<see cref="EdgeSide"/>), or unknown
/// (anything else: other objects, defects, blends near half). Every shape is fitted over sizes from
/// the minimum size - 1 to the maximum + 1 and centres within the place centre +- (jitter + 1), in steps of
/// <see cref="FitStep"/> px, a template pixel being inside when its centre is; a shape's error is its best fit's count
/// of known pixels that disagree. The best shape is reported when its error is at most <see cref="MaxFitError"/> of the
/// object pixels and the runner-up's error exceeds it by at least <see cref="MinFitMargin"/> pixels (a square and a
/// circle of 10 px differ in only a few pixels at the corners once anti-aliased edges are left out).
/// Undecidable when the colour is absent. An undecided shape counts as wrong in <see cref="ObjectVerdict.Correct"/>.
/// Like the other unknown pixels, those of another prompted object of the same colour in an overlapping
/// place; pixels inside the box of another prompted object of the same colour are unknown too, so that object's
/// pixels are never fitted as this one's.</item>
/// <item>Background: present when at least <see cref="OracleSpec.MinBackgroundFraction"/> (default 0.25) of all
/// pixels show its colour.</item>
/// </list>
/// </summary>
public sealed partial class Oracle
{
    public const double FitStep = 0.5, MaxFitError = 0.15, EdgeDeadZone = 0.1;
    public const int MinFitMargin = 3;
    readonly WorldSpec _spec;
    readonly Dictionary<string, (bool[] Mask, int Area)> _own = new();

    public Oracle(WorldSpec spec)
    {
        _spec = spec;
        int size = spec.ImageSize;
        foreach (var p in spec.Places)
        {
            var mask = new bool[size * size];
            for (int y = p.Y0; y < p.Y1; y++)
                for (int x = p.X0; x < p.X1; x++)
                    mask[y * size + x] = spec.IsOwnPixel(p, x, y);
            _own[p.Name] = (mask, mask.Count(b => b));
        }
    }

    public OracleReport Judge(RenderedScene r) => Judge(r.Rgb, r.Prompt);

    /// <summary>Judges an image tensor [3, H, W] or [1, 3, H, W] in [0, 1] (converted to bytes first).</summary>
    public OracleReport Judge(TorchSharp.torch.Tensor image, string prompt) => Judge(WorldImage.FromTensor(image), prompt);

    /// <summary>Judges a float image [3, H, W] in [0, 1] (converted to bytes first).</summary>
    public OracleReport Judge(float[] chw, string prompt) => Judge(WorldImage.ToBytesHwc(chw, _spec.ImageSize, _spec.ImageSize), prompt);

    /// <summary>Judges a byte image, row-major H x W x 3, of the world's size.</summary>
    public OracleReport Judge(byte[] rgb, string prompt)
    {
        int size = _spec.ImageSize;
        WorldImage.CheckLength(rgb.Length, size, size, $"image for the {size}x{size} world");
        var d = PromptGrammar.Parse(prompt, _spec);
        var hazard = Defect(rgb, DefectKind.Hazard);
        var glitch = Defect(rgb, DefectKind.Glitch);
        var rot = _spec.Rot is null ? null : Defect(rgb, DefectKind.Rot);

        var bg = Shows(rgb, _spec.BackgroundColour(d.Background).Rgb);
        var verdicts = new List<ObjectVerdict>();
        foreach (var o in d.Objects)
        {
            var colour = _spec.ShapeColour(o.Colour).Rgb;
            var place = _spec.Place(o.Place);
            var shows = Shows(rgb, colour);
            var (own, area) = _own[place.Name];
            int count = 0;
            for (int p = 0; p < shows.Length; p++) if (shows[p] && own[p]) count++;
            double fraction = area == 0 ? 0 : (double)count / area;
            bool present = fraction >= _spec.Oracle.MinPlaceFraction;
            string? shape = present ? DetectShape(d, o, place, rgb, shows, bg) : null;
            verdicts.Add(new ObjectVerdict(o, fraction, present, shape) { OtherColour = present ? null : OtherColourIn(rgb, own, area, o.Colour) });
        }

        double bgFraction = (double)bg.Count(b => b) / bg.Length;
        return new OracleReport(d, hazard, glitch, verdicts, bgFraction, bgFraction >= _spec.Oracle.MinBackgroundFraction) { Rot = rot };
    }

    string? OtherColourIn(byte[] rgb, bool[] own, int area, string except)
    {
        string? best = null;
        double bestFraction = 0;
        foreach (var c in _spec.ShapePalette)
        {
            if (c.Name == except || area == 0) continue;
            var shows = Shows(rgb, c.Rgb);
            int count = 0;
            for (int p = 0; p < shows.Length; p++) if (shows[p] && own[p]) count++;
            double fraction = (double)count / area;
            if (fraction >= _spec.Oracle.MinPlaceFraction && fraction > bestFraction) { best = c.Name; bestFraction = fraction; }
        }
        return best;
    }

    /// <summary>The mask and verdict of one defect kind on a byte image.</summary>
    public DefectVerdict Defect(byte[] rgb, DefectKind kind)
    {
        WorldImage.CheckLength(rgb.Length, _spec.ImageSize, _spec.ImageSize, $"image for the {_spec.ImageSize}x{_spec.ImageSize} world");
        var colours = _spec.Colours(kind);
        var near = colours.Select(c => Shows(rgb, c.Rgb, _spec.Oracle.ReservedDistance)).ToArray();
        var faint = colours.Select(c => Shows(rgb, c.Rgb, _spec.Oracle.ResidueDistance)).ToArray();
        // A generated palette colour drawn a little off can come within the residue distance (green lies 117 from
        // lime): a pixel that still shows a palette colour is that colour, not residue.
        var palette = _spec.BackgroundPalette.Concat(_spec.ShapePalette).Select(c => Shows(rgb, c.Rgb)).ToArray();
        var mask = new bool[near[0].Length];
        var residue = new bool[mask.Length];
        int count = 0, residueCount = 0;
        for (int p = 0; p < mask.Length; p++)
        {
            if (mask[p] = near.Any(m => m[p])) count++;
            if (residue[p] = mask[p] || (faint.Any(m => m[p]) && !palette.Any(m => m[p]))) residueCount++;
        }
        bool present = count >= _spec.Oracle.MinDefectPixels && near.All(m => m.Any(b => b));
        return new DefectVerdict(kind, present, count, mask) { ResidueMask = residue, ResiduePixels = residueCount };
    }

    /// <summary>
    /// The share of <paramref name="referenceMask"/>'s pixels (e.g. a defect's mask on the original image) that are residue
    /// of <paramref name="kind"/> on <paramref name="rgb"/>: 0 when the region is clean, 1 when all of it still comes within
    /// the residue distance of the kind's colours; NaN for an empty mask.
    /// </summary>
    public double ResidueShare(byte[] rgb, DefectKind kind, bool[] referenceMask)
    {
        var residue = Defect(rgb, kind).ResidueMask;
        if (referenceMask.Length != residue.Length) throw new InvalidInputException($"reference mask of {referenceMask.Length} pixels: expected {residue.Length}");
        int total = 0, left = 0;
        for (int p = 0; p < residue.Length; p++)
            if (referenceMask[p]) { total++; if (residue[p]) left++; }
        return total == 0 ? double.NaN : (double)left / total;
    }

    internal bool[] Shows(byte[] rgb, Rgb colour, double? distance = null)
    {
        double limit = distance ?? _spec.Oracle.ColourDistance, limit2 = limit * limit;
        var m = new bool[rgb.Length / 3];
        for (int p = 0; p < m.Length; p++)
        {
            int dr = rgb[3 * p] - colour.R, dg = rgb[3 * p + 1] - colour.G, db = rgb[3 * p + 2] - colour.B;
            m[p] = dr * dr + dg * dg + db * db <= limit2;
        }
        return m;
    }

    /// <summary>
    /// An anti-aliased edge pixel: a blend of the object's colour with the background (within colour distance of the
    /// segment between them) covered by the object to a share a, read off the segment. Its centre lies inside the object
    /// about when a &gt;= 1/2, so it counts as object from a &gt;= 1/2 + <see cref="EdgeDeadZone"/> and as background up to
    /// 1/2 - <see cref="EdgeDeadZone"/>; anything else stays unknown. Without these pixels a 10 px square and circle differ
    /// in too few known pixels to be told apart.
    /// </summary>
    bool? EdgeSide(byte[] rgb, int p, Rgb obj, Rgb bg)
    {
        double dr = obj.R - bg.R, dg = obj.G - bg.G, db = obj.B - bg.B;
        double wr = rgb[3 * p] - bg.R, wg = rgb[3 * p + 1] - bg.G, wb = rgb[3 * p + 2] - bg.B;
        double len2 = dr * dr + dg * dg + db * db;
        if (len2 == 0) return null;
        double a = (wr * dr + wg * dg + wb * db) / len2;
        if (a < 0 || a > 1) return null;
        double er = wr - a * dr, eg = wg - a * dg, eb = wb - a * db;
        if (er * er + eg * eg + eb * eb > _spec.Oracle.ColourDistance * _spec.Oracle.ColourDistance) return null;
        return a >= 0.5 + EdgeDeadZone ? true : a <= 0.5 - EdgeDeadZone ? false : null;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    string? DetectShape(SceneDescription d, PromptObject o, PlaceSpec place, byte[] rgb, bool[] shows, bool[] background)
    {
        int size = _spec.ImageSize;
        var objectColour = _spec.ShapeColour(o.Colour).Rgb;
        var backgroundColour = _spec.BackgroundColour(d.Background).Rgb;
        var twins = d.Objects.Where(other => other != o && other.Colour == o.Colour).Select(other => _spec.Place(other.Place))
            .Where(q => q.Overlaps(place)).ToList();
        var px = new List<double>();
        var py = new List<double>();
        var inside = new List<bool>();
        for (int y = place.Y0; y < place.Y1; y++)
            for (int x = place.X0; x < place.X1; x++)
            {
                int p = y * size + x;
                if (twins.Any(q => q.Contains(x, y))) continue;
                bool? known = shows[p] ? true : background[p] ? false : EdgeSide(rgb, p, objectColour, backgroundColour);
                if (known is { } k) { px.Add(x + 0.5); py.Add(y + 0.5); inside.Add(k); }
            }
        int objectPixels = inside.Count(b => b);
        if (objectPixels == 0) return null;
        double[] xs = px.ToArray(), ys = py.ToArray();
        bool[] ins = inside.ToArray();

        double reach = _spec.CenterJitter + 1, smallest = _spec.ShapeSizeMin - 1;
        int offsets = (int)Math.Floor(2 * reach / FitStep + 1e-9), sizes = (int)Math.Floor((_spec.ShapeSizeMax - _spec.ShapeSizeMin + 2) / FitStep + 1e-9);
        // Middle sizes and central positions first: a good early bound lets most other fits stop early.
        var sizeOrder = Enumerable.Range(0, sizes + 1).OrderBy(i => Math.Abs(2 * i - sizes)).ToArray();
        var offsetOrder = Enumerable.Range(0, offsets + 1).OrderBy(i => Math.Abs(2 * i - offsets)).ToArray();
        var errors = new List<(string Shape, int Error)>();
        foreach (var shape in _spec.Shapes)
        {
            int best = int.MaxValue;
            foreach (int si in sizeOrder)
                foreach (int iy in offsetOrder)
                    foreach (int ix in offsetOrder)
                    {
                        var t = new Rasterizer.Shape(shape, place.CenterX - reach + ix * FitStep, place.CenterY - reach + iy * FitStep, smallest + si * FitStep);
                        int e = 0;
                        for (int i = 0; i < xs.Length; i++)
                            if (t.Covers(xs[i], ys[i]) != ins[i] && ++e >= best) break;
                        best = Math.Min(best, e);
                    }
            errors.Add((shape, best));
        }
        errors.Sort((a, b) => a.Error.CompareTo(b.Error));
        bool good = errors[0].Error <= MaxFitError * objectPixels;
        bool clear = errors.Count == 1 || errors[1].Error - errors[0].Error >= MinFitMargin;
        return good && clear ? errors[0].Shape : null;
    }
}
