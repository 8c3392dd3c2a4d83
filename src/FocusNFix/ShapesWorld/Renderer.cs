namespace FocusNFix.ShapesWorld;

/// <summary>
/// Draws a <see cref="Scene"/>: a flat background, the objects anti-aliased by point supersampling (each pixel is
/// the mean of its samples' colours, rounded to bytes with integer arithmetic, so every object pixel is a blend of
/// palette colours), then the defects stamped without anti-aliasing in pure reserved colours: rot, hazard checkers,
/// the glitch patch last (the sampler keeps rot off the other two, so all masks are disjoint). The returned masks are exactly the stamped pixels.
/// </summary>
public sealed class Renderer
{
    readonly WorldSpec _spec;

    public Renderer(WorldSpec spec) { _spec = spec; }

    public RenderedScene Render(Scene scene)
    {
        int size = _spec.ImageSize, n = _spec.SamplesPerAxis, per = n * n;
        var bg = _spec.BackgroundColour(scene.Background).Rgb;
        // Index 0 is the background, k + 1 object k.
        var palette = new[] { bg }.Concat(scene.Objects.Select(o => _spec.ShapeColour(o.Colour).Rgb)).ToArray();
        int[] pr = palette.Select(c => (int)c.R).ToArray(), pg = palette.Select(c => (int)c.G).ToArray(), pb = palette.Select(c => (int)c.B).ToArray();
        var owners = scene.Raster is { } cached && cached.Size == size && cached.Samples == n
            ? cached.Owners
            : Rasterizer.Owners(size, n, scene.Objects);
        var rgb = new byte[size * size * 3];
        for (int p = 0; p < size * size; p++)
        {
            int r = 0, g = 0, b = 0;
            for (int s = p * per, end = s + per; s < end; s++)
            {
                int k = owners[s] + 1;
                r += pr[k]; g += pg[k]; b += pb[k];
            }
            rgb[3 * p] = (byte)((r + per / 2) / per);
            rgb[3 * p + 1] = (byte)((g + per / 2) / per);
            rgb[3 * p + 2] = (byte)((b + per / 2) / per);
        }

        var hazardMask = new bool[size * size];
        var glitchMask = new bool[size * size];
        var rotMask = new bool[size * size];
        if (scene.Rot is { } rot)
        {
            var colours = _spec.Colours(DefectKind.Rot);
            foreach (int p in rot.Pixels)
            {
                var c = colours[(p % size + p / size) % colours.Count].Rgb;
                rgb[3 * p] = c.R; rgb[3 * p + 1] = c.G; rgb[3 * p + 2] = c.B;
                rotMask[p] = true;
            }
        }
        foreach (var h in scene.Hazards)
            for (int dy = 0; dy < h.SidePx; dy++)
                for (int dx = 0; dx < h.SidePx; dx++)
                {
                    int cell = dy / h.CellPx + dx / h.CellPx;
                    Stamp(rgb, hazardMask, glitchMask, size, h.X + dx, h.Y + dy, _spec.HazardColours[cell % 2].Rgb, hazard: true);
                }
        if (scene.Glitch is { } gl)
            for (int dy = 0; dy < gl.Height; dy++)
                for (int dx = 0; dx < gl.Width; dx++)
                {
                    int stripe = gl.Width >= gl.Height ? dx : dy;
                    Stamp(rgb, hazardMask, glitchMask, size, gl.X + dx, gl.Y + dy, _spec.GlitchColours[stripe % 2].Rgb, hazard: false);
                }
        return new RenderedScene(scene, size, size, rgb, hazardMask, glitchMask, rotMask);
    }

    static void Stamp(byte[] rgb, bool[] hazardMask, bool[] glitchMask, int size, int x, int y, Rgb c, bool hazard)
    {
        if (x < 0 || y < 0 || x >= size || y >= size) return;
        int p = y * size + x;
        rgb[3 * p] = c.R; rgb[3 * p + 1] = c.G; rgb[3 * p + 2] = c.B;
        // A later stamp owns the pixel, so the two masks stay disjoint and match the colours on the image.
        hazardMask[p] = hazard;
        glitchMask[p] = !hazard;
    }
}
