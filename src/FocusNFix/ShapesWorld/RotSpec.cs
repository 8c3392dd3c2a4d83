namespace FocusNFix.ShapesWorld;

/// <summary>
/// Rot, the large-area defect: a blob of reserved-colour pixels eating into one object, covering a share of that
/// object's area drawn uniformly from [<see cref="MinAreaFraction"/>, <see cref="MaxAreaFraction"/>]. It lies only on
/// pixels the object covers fully (every anti-aliasing sample), so repainting the blob in the object's own colour gives
/// back exactly the scene without rot, and a fix never needs to touch a pixel outside the object.
/// </summary>
/// <param name="Colours">Reserved colours of the texture: pixel (x, y) of the blob has colour (x + y) mod count.</param>
/// <param name="Rate">Probability that an image carries rot (on an object without a hazard checker).</param>
/// <param name="MinAreaFraction">Smallest share of the object's area (its pixels covered by at least half their samples) the blob takes.</param>
/// <param name="MaxAreaFraction">Largest share; capped per object by the share of fully covered pixels.</param>
public sealed record RotSpec(IReadOnlyList<NamedColour> Colours, double Rate, double MinAreaFraction, double MaxAreaFraction)
{
    public const string Pattern = "a 4-connected blob grown from a fully covered pixel at the object's edge into the object's fully covered pixels, " +
        "area_fraction of the object's area (pixels covered by at least half their samples), never on a hazard or glitch pixel; " +
        "pixel (x, y) of the blob has colour (x + y) mod the number of colours";

    /// <summary>
    /// One reserved colour, lime (45, 255, 0): the only region of RGB that lies farther than twice the oracle's reserved
    /// distance from black, yellow, magenta and cyan while staying at least 100 from every palette colour (117 from
    /// green, 110 from the nearest blend of palette colours; measured by a grid search over RGB in steps of 15). Rot
    /// on 30% of images, eating 30-60% of an object.
    /// </summary>
    public static RotSpec Default => new([new NamedColour("lime", new Rgb(45, 255, 0))], 0.3, 0.3, 0.6);

    /// <summary>Mean number of rot pixels in a world with these shapes and sizes: the middle share times the mean shape area.</summary>
    public double ExpectedPixels(WorldSpec spec)
    {
        double s = (spec.ShapeSizeMin + spec.ShapeSizeMax) / 2;
        double meanArea = spec.Shapes.Average(shape => shape switch { "circle" => Math.PI / 4, "square" => 1.0, _ => 0.5 }) * s * s;
        return (MinAreaFraction + MaxAreaFraction) / 2 * meanArea;
    }
}
