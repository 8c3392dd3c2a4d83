namespace FocusNFix.ShapesWorld;

/// <summary>A named place: objects there are centred near (CenterX, CenterY) and lie inside the pixel box [X0, X1) x [Y0, Y1).</summary>
public sealed record PlaceSpec(string Name, double CenterX, double CenterY, int X0, int Y0, int X1, int Y1)
{
    public bool Contains(int x, int y) => x >= X0 && x < X1 && y >= Y0 && y < Y1;
    public bool Overlaps(PlaceSpec o) => X0 < o.X1 && o.X0 < X1 && Y0 < o.Y1 && o.Y0 < Y1;
    public int Area => (X1 - X0) * (Y1 - Y0);
}

/// <summary>
/// The oracle's documented thresholds (all distances are Euclidean in 0..255 RGB).
/// </summary>
/// <param name="ReservedDistance">A pixel belongs to a defect kind's mask when it lies within this distance of one of
/// that kind's reserved colours. Every blend of palette colours stays farther than this (checked by
/// <see cref="WorldSpec.Validate"/>), so on rendered images the masks are exact.</param>
/// <param name="MinDefectPixels">A defect kind is present when its mask has at least this many pixels and
/// contains at least one pixel near each of its two colours.</param>
/// <param name="ColourDistance">A pixel shows a palette colour when it lies within this distance of it.</param>
/// <param name="MinPlaceFraction">An object's colour is present in its place when the pixels that show the colour
/// cover at least this fraction of the place's own region (its box minus the other places' boxes).</param>
/// <param name="MinBackgroundFraction">The background colour is present when at least this fraction of all
/// pixels shows it.</param>
/// <param name="ResidueDistance">A wider distance than <paramref name="ReservedDistance"/>: a pixel within it of one of a
/// kind's colours is residue of that kind (a faint or half-removed defect, or one colour of two left). Every blend of
/// palette colours lies farther (checked by <see cref="WorldSpec.Validate"/>), so a rendered clean image has none.</param>
public sealed record OracleSpec(double ReservedDistance, int MinDefectPixels, double ColourDistance, double MinPlaceFraction, double MinBackgroundFraction,
    double ResidueDistance = OracleSpec.DefaultResidueDistance)
{
    public const double DefaultResidueDistance = 95;
    public static OracleSpec Default => new(80, 4, 45, 0.04, 0.25, DefaultResidueDistance);
}

/// <summary>
/// Train/validation/test prompt splits. Rule: a prompt is in test when any of its objects'
/// (colour, shape, place) is a test triple, otherwise in validation when any is a validation triple,
/// otherwise in train. The prompt lists are fixed pools drawn under that rule (train: the fine-tuning pool).
/// </summary>
public sealed record SplitSpec(
    IReadOnlyList<PromptObject> ValTriples,
    IReadOnlyList<PromptObject> TestTriples,
    IReadOnlyList<string> TrainPrompts,
    IReadOnlyList<string> ValPrompts,
    IReadOnlyList<string> TestPrompts)
{
    public const string Rule = "test if any object's (colour, shape, place) is in test_triples; else val if any is in val_triples; else train";
}

/// <summary>
/// Everything that defines ShapesWorld: palettes, reserved colours, places, shapes, geometry, defect rates,
/// oracle thresholds and prompt splits. Serialised as world.json (<see cref="ToJson"/>); two specs are equal
/// when their world.json texts are equal.
/// </summary>
public sealed partial class WorldSpec : IEquatable<WorldSpec>
{
    public const string FormatName = "focusnfix-shapesworld";
    /// <summary>Version 2 added rot, defect captions and the oracle's residue distance; version 1 files still load
    /// (as a world without rot, without defect captions, residue distance <see cref="OracleSpec.DefaultResidueDistance"/>).</summary>
    public const int FormatVersion = 2;
    /// <summary>Shapes the renderer can draw.</summary>
    public static readonly IReadOnlyList<string> KnownShapes = ["circle", "square", "triangle"];

    public required int ImageSize { get; init; }
    public required IReadOnlyList<NamedColour> BackgroundPalette { get; init; }
    public required IReadOnlyList<NamedColour> ShapePalette { get; init; }
    /// <summary>The two hazard colours: first colour on even checker cells, second on odd.</summary>
    public required IReadOnlyList<NamedColour> HazardColours { get; init; }
    /// <summary>The two glitch colours: first colour on even stripes, second on odd.</summary>
    public required IReadOnlyList<NamedColour> GlitchColours { get; init; }
    public required IReadOnlyList<string> Shapes { get; init; }
    /// <summary>In canonical prompt order, which is also painting order.</summary>
    public required IReadOnlyList<PlaceSpec> Places { get; init; }
    public required double ShapeSizeMin { get; init; }
    public required double ShapeSizeMax { get; init; }
    /// <summary>Each centre coordinate is the place centre plus a uniform offset in [-CenterJitter, CenterJitter).</summary>
    public required double CenterJitter { get; init; }
    public required int MinObjects { get; init; }
    public required int MaxObjects { get; init; }
    /// <summary>Anti-aliasing: a pixel is the mean of SamplesPerAxis^2 point samples on a regular grid.</summary>
    public required int SamplesPerAxis { get; init; }
    /// <summary>Probability that an object of that shape carries a hazard checker.</summary>
    public required IReadOnlyDictionary<string, double> HazardRateByShape { get; init; }
    public required int HazardCellPx { get; init; }
    public required int HazardCells { get; init; }
    /// <summary>Probability that an image carries a glitch patch.</summary>
    public required double GlitchRate { get; init; }
    public required int GlitchLongPx { get; init; }
    public required int GlitchShortPx { get; init; }
    /// <summary>The large-area rot defect; null in a world without it (a version 1 world.json).</summary>
    public RotSpec? Rot { get; init; }
    /// <summary>Captions that name defects in part of the base model's training data, and the phrases they use.</summary>
    public DefectCaptionSpec Captions { get; init; } = DefectCaptionSpec.None;
    public required OracleSpec Oracle { get; init; }
    public required SplitSpec Splits { get; init; }

    public IEnumerable<NamedColour> ReservedColours => DefectKinds.SelectMany(Colours);

    /// <summary>The defect kinds this world defines: hazard and glitch always, rot when <see cref="Rot"/> is set.</summary>
    public IReadOnlyList<DefectKind> DefectKinds => Rot is null ? [DefectKind.Hazard, DefectKind.Glitch] : [DefectKind.Hazard, DefectKind.Glitch, DefectKind.Rot];

    /// <summary>A kind's reserved colours; an error naming the kind when the world does not define it.</summary>
    public IReadOnlyList<NamedColour> Colours(DefectKind kind) => kind switch
    {
        DefectKind.Hazard => HazardColours,
        DefectKind.Glitch => GlitchColours,
        _ => Rot?.Colours ?? throw new InvalidInputException("this world defines no rot defect (a version 1 world.json); write a current one with fnf world spec"),
    };

    public NamedColour ShapeColour(string name) => ShapePalette.FirstOrDefault(c => c.Name == name)
        ?? throw new InvalidInputException($"unknown shape colour '{name}'; expected one of {string.Join(", ", ShapePalette.Select(c => c.Name))}");

    public NamedColour BackgroundColour(string name) => BackgroundPalette.FirstOrDefault(c => c.Name == name)
        ?? throw new InvalidInputException($"unknown background colour '{name}'; expected one of {string.Join(", ", BackgroundPalette.Select(c => c.Name))}");

    public PlaceSpec Place(string name) => Places.FirstOrDefault(p => p.Name == name)
        ?? throw new InvalidInputException($"unknown place '{name}'; expected one of {string.Join(", ", Places.Select(p => p.Name))}");

    public int PlaceIndex(string name)
    {
        for (int i = 0; i < Places.Count; i++) if (Places[i].Name == name) return i;
        throw new InvalidInputException($"unknown place '{name}'; expected one of {string.Join(", ", Places.Select(p => p.Name))}");
    }

    public double HazardRate(string shape) => HazardRateByShape.TryGetValue(shape, out var r) ? r : 0;

    /// <summary>
    /// The default world at <paramref name="size"/> x <paramref name="size"/>. Geometry is defined at 32 px and scaled:
    /// shapes 10..12 px, corner places centred at 7/32 and 25/32 of the side, the centre place at 1/2, a 4 px hazard
    /// checker (2 x 2 cells of 2 px), a 5 x 3 px glitch. Splits hold out 6 validation and 6 test triples and draw
    /// 256 train, 64 validation and 128 test prompts from <paramref name="splitSeed"/>. Rot (<see cref="RotSpec.Default"/>) and
    /// defect captions (<see cref="DefectCaptionSpec.Default"/>) are on; rot draws come from their own random stream, so
    /// every scene's objects, hazards and glitch are those of the world without rot.
    /// The palette came from a search: shape colours lie at least 140 apart and from the backgrounds, every blend of a
    /// shape colour with a background lies at least 70 from every other shape colour, and every blend of palette
    /// colours lies at least 100 from every reserved colour.
    /// </summary>
    public static WorldSpec Default(int size = 32, long splitSeed = 20250106)
    {
        if (size < 24 || size > 1024) throw new InvalidInputException($"image size {size}: expected 24..1024 pixels (smaller shapes cannot carry a hazard checker)");
        double scale = size / 32.0;
        double sizeMin = 10 * scale, sizeMax = 12 * scale, jitter = 0.5 * scale;
        double half = sizeMax / 2 + jitter;
        PlaceSpec MakePlace(string name, double fx, double fy)
        {
            double cx = fx * size, cy = fy * size;
            return new PlaceSpec(name, cx, cy,
                Math.Max(0, (int)Math.Floor(cx - half)), Math.Max(0, (int)Math.Floor(cy - half)),
                Math.Min(size, (int)Math.Ceiling(cx + half)), Math.Min(size, (int)Math.Ceiling(cy + half)));
        }
        const double near = 7 / 32.0, far = 25 / 32.0;
        var spec = new WorldSpec
        {
            ImageSize = size,
            BackgroundPalette = [new("white", new(230, 240, 220)), new("gray", new(125, 155, 150)), new("sky", new(140, 195, 255))],
            ShapePalette = [new("red", new(190, 0, 30)), new("green", new(0, 155, 40)), new("blue", new(0, 55, 200)),
                            new("orange", new(250, 130, 40)), new("purple", new(155, 5, 195))],
            HazardColours = [new("black", new(0, 0, 0)), new("yellow", new(255, 230, 0))],
            GlitchColours = [new("magenta", new(255, 0, 255)), new("cyan", new(0, 255, 255))],
            Shapes = ["circle", "square", "triangle"],
            Places = [MakePlace("top left", near, near), MakePlace("top right", far, near), MakePlace("bottom left", near, far),
                      MakePlace("bottom right", far, far), MakePlace("center", 0.5, 0.5)],
            ShapeSizeMin = sizeMin,
            ShapeSizeMax = sizeMax,
            CenterJitter = jitter,
            MinObjects = 1,
            MaxObjects = 3,
            SamplesPerAxis = 4,
            HazardRateByShape = new Dictionary<string, double> { ["circle"] = 0.03, ["square"] = 0.03, ["triangle"] = 0.70 },
            // Rounded down so the checker still fits inside the smallest triangles.
            HazardCellPx = Math.Max(1, (int)Math.Floor(2 * scale)),
            HazardCells = 2,
            GlitchRate = 0.25,
            GlitchLongPx = Math.Max(2, (int)Math.Round(5 * scale, MidpointRounding.AwayFromZero)),
            GlitchShortPx = Math.Max(1, (int)Math.Round(3 * scale, MidpointRounding.AwayFromZero)),
            Rot = RotSpec.Default,
            Captions = DefectCaptionSpec.Default,
            Oracle = OracleSpec.Default,
            Splits = new SplitSpec([], [], [], [], []),
        };
        var splits = PromptSplits.Generate(spec, splitSeed, heldOutPerSplit: 6, trainPrompts: 256, valPrompts: 64, testPrompts: 128);
        spec = spec.With(splits);
        spec.Validate();
        return spec;
    }

    /// <summary>A copy with other splits.</summary>
    public WorldSpec With(SplitSpec splits) => new()
    {
        ImageSize = ImageSize, BackgroundPalette = BackgroundPalette, ShapePalette = ShapePalette, HazardColours = HazardColours,
        GlitchColours = GlitchColours, Shapes = Shapes, Places = Places, ShapeSizeMin = ShapeSizeMin, ShapeSizeMax = ShapeSizeMax,
        CenterJitter = CenterJitter, MinObjects = MinObjects, MaxObjects = MaxObjects, SamplesPerAxis = SamplesPerAxis,
        HazardRateByShape = HazardRateByShape, HazardCellPx = HazardCellPx, HazardCells = HazardCells, GlitchRate = GlitchRate,
        GlitchLongPx = GlitchLongPx, GlitchShortPx = GlitchShortPx, Rot = Rot, Captions = Captions, Oracle = Oracle, Splits = splits,
    };

    /// <summary>A copy with another rot definition (null: none) and other defect captions.</summary>
    public WorldSpec With(RotSpec? rot, DefectCaptionSpec captions) => new()
    {
        ImageSize = ImageSize, BackgroundPalette = BackgroundPalette, ShapePalette = ShapePalette, HazardColours = HazardColours,
        GlitchColours = GlitchColours, Shapes = Shapes, Places = Places, ShapeSizeMin = ShapeSizeMin, ShapeSizeMax = ShapeSizeMax,
        CenterJitter = CenterJitter, MinObjects = MinObjects, MaxObjects = MaxObjects, SamplesPerAxis = SamplesPerAxis,
        HazardRateByShape = HazardRateByShape, HazardCellPx = HazardCellPx, HazardCells = HazardCells, GlitchRate = GlitchRate,
        GlitchLongPx = GlitchLongPx, GlitchShortPx = GlitchShortPx, Rot = rot, Captions = captions, Oracle = Oracle, Splits = Splits,
    };

    public bool Equals(WorldSpec? other) => other is not null && ToJson() == other.ToJson();
    public override bool Equals(object? obj) => Equals(obj as WorldSpec);
    public override int GetHashCode() => ToJson().GetHashCode();
}
