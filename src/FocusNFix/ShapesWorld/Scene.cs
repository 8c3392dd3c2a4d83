namespace FocusNFix.ShapesWorld;

/// <summary>A colour in 0..255 RGB.</summary>
public readonly record struct Rgb(byte R, byte G, byte B)
{
    /// <summary>Euclidean distance in 0..255 RGB space (the unit of every oracle threshold).</summary>
    public double DistanceTo(Rgb o) => Distance(R, G, B, o);

    public static double Distance(double r, double g, double b, Rgb o)
    {
        double dr = r - o.R, dg = g - o.G, db = b - o.B;
        return Math.Sqrt(dr * dr + dg * dg + db * db);
    }

    public override string ToString() => $"({R},{G},{B})";
}

/// <summary>A palette entry: the name used in prompts and its exact RGB.</summary>
public sealed record NamedColour(string Name, Rgb Rgb);

/// <summary>One object as a prompt states it: "a {Colour} {Shape} in the {Place}".</summary>
public sealed record PromptObject(string Colour, string Shape, string Place)
{
    public override string ToString() => $"a {Colour} {Shape} in the {Place}";
}

/// <summary>
/// What a prompt says: the background colour and the objects, in prompt order. Two descriptions are
/// equal when the background and the object lists (order included) are equal.
/// </summary>
public sealed class SceneDescription : IEquatable<SceneDescription>
{
    public string Background { get; }
    public IReadOnlyList<PromptObject> Objects { get; }

    public SceneDescription(string background, IEnumerable<PromptObject> objects)
    {
        Background = background;
        Objects = objects.ToArray();
    }

    public bool Equals(SceneDescription? other) =>
        other is not null && Background == other.Background && Objects.SequenceEqual(other.Objects);

    public override bool Equals(object? obj) => Equals(obj as SceneDescription);

    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(Background);
        foreach (var o in Objects) h.Add(o);
        return h.ToHashCode();
    }

    public override string ToString() => PromptGrammar.Format(this);
}

/// <summary>
/// A placed object. Geometry is in pixel units, pixel (row i, column j) covering [j, j+1) x [i, i+1):
/// the object's bounding box is the square of side <see cref="Size"/> centred on (CenterX, CenterY).
/// circle: the inscribed disc; square: the box itself; triangle: apex at the top centre, base along
/// the bottom edge.
/// </summary>
public sealed record SceneObject(string Colour, string Shape, string Place, double CenterX, double CenterY, double Size)
{
    public PromptObject Describe() => new(Colour, Shape, Place);
}

/// <summary>
/// A hazard checker stamped on object <see cref="ObjectIndex"/>: a square of Cells x Cells cells of
/// CellPx x CellPx pixels with its top-left pixel at (X, Y); cell (r, c) has the first hazard colour
/// (black) when r + c is even, the second (yellow) otherwise. Every pixel is a pure reserved colour.
/// </summary>
public sealed record HazardStamp(int ObjectIndex, int X, int Y, int CellPx, int Cells)
{
    public int SidePx => CellPx * Cells;
}

/// <summary>
/// A glitch patch of Width x Height pixels with its top-left pixel at (X, Y), centred on an edge pixel of
/// object <see cref="ObjectIndex"/>. One-pixel stripes run across the long side: stripe k along the long
/// axis has the first glitch colour (magenta) when k is even, the second (cyan) otherwise.
/// </summary>
public sealed record GlitchStamp(int ObjectIndex, int X, int Y, int Width, int Height);

/// <summary>
/// Rot eating into object <see cref="ObjectIndex"/>: the blob's pixels (index y * size + x), all fully covered by that
/// object, none under a hazard or glitch stamp. <see cref="AreaFraction"/> is their count over the object's area (its
/// pixels covered by at least half their samples).
/// </summary>
public sealed record RotStamp(int ObjectIndex, IReadOnlyList<int> Pixels, double AreaFraction);

/// <summary>A fully determined scene: what the renderer draws, defects included.</summary>
public sealed class Scene
{
    public long Seed { get; }
    public string Background { get; }
    /// <summary>In painting order (later objects cover earlier ones), which is also prompt order.</summary>
    public IReadOnlyList<SceneObject> Objects { get; }
    public IReadOnlyList<HazardStamp> Hazards { get; }
    public GlitchStamp? Glitch { get; }
    public RotStamp? Rot { get; }

    public Scene(long seed, string background, IEnumerable<SceneObject> objects, IEnumerable<HazardStamp> hazards, GlitchStamp? glitch, RotStamp? rot = null)
    {
        Seed = seed;
        Background = background;
        Objects = objects.ToArray();
        Hazards = hazards.ToArray();
        Glitch = glitch;
        Rot = rot;
    }

    /// <summary>The defect kinds the scene carries.</summary>
    public IReadOnlyList<DefectKind> Defects =>
        new[] { (Hazards.Count > 0, DefectKind.Hazard), (Glitch != null, DefectKind.Glitch), (Rot != null, DefectKind.Rot) }.Where(x => x.Item1).Select(x => x.Item2).ToArray();

    /// <summary>The same scene with the listed defects left out (same objects, same other stamps).</summary>
    public Scene Without(params DefectKind[] kinds) => new(Seed, Background, Objects,
        kinds.Contains(DefectKind.Hazard) ? [] : Hazards, kinds.Contains(DefectKind.Glitch) ? null : Glitch, kinds.Contains(DefectKind.Rot) ? null : Rot) { Raster = Raster };

    public SceneDescription Description => new(Background, Objects.Select(o => o.Describe()));

    /// <summary>The sampler's rasterisation, kept so the renderer need not redo it (size and samples per axis it was made with).</summary>
    internal (int Size, int Samples, short[] Owners)? Raster { get; set; }
    public string Prompt => PromptGrammar.Format(Description);
}

/// <summary>
/// A rendered scene. <see cref="Rgb"/> is row-major H x W x 3 bytes (HWC); masks are row-major H x W
/// (index y * Width + x) and are disjoint: a glitch never covers a hazard, rot never covers either.
/// </summary>
public sealed class RenderedScene
{
    public Scene Scene { get; }
    public int Width { get; }
    public int Height { get; }
    public byte[] Rgb { get; }
    public bool[] HazardMask { get; }
    public bool[] GlitchMask { get; }
    public bool[] RotMask { get; }

    public RenderedScene(Scene scene, int width, int height, byte[] rgb, bool[] hazardMask, bool[] glitchMask, bool[]? rotMask = null)
    {
        Scene = scene; Width = width; Height = height; Rgb = rgb; HazardMask = hazardMask; GlitchMask = glitchMask;
        RotMask = rotMask ?? new bool[width * height];
    }

    public string Prompt => Scene.Prompt;
    public bool HasHazard => HazardMask.Any(b => b);
    public bool HasGlitch => GlitchMask.Any(b => b);
    public bool HasRot => RotMask.Any(b => b);

    public bool[] Mask(DefectKind kind) => kind switch { DefectKind.Hazard => HazardMask, DefectKind.Glitch => GlitchMask, _ => RotMask };
    public bool Has(DefectKind kind) => Mask(kind).Any(b => b);

    /// <summary>The image as float [3, H, W] (CHW) in [0, 1]: byte / 255.</summary>
    public float[] ToFloatChw() => WorldImage.ToFloatChw(Rgb, Width, Height);
}
