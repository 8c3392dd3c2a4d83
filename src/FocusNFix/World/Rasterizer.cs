namespace FocusNFix.World;

/// <summary>
/// Point-sampled coverage shared by the sampler (to place defects on visible object pixels) and the
/// renderer. Each pixel holds n x n samples at ((a + 0.5) / n, (b + 0.5) / n) inside it; a sample belongs
/// to the last object in painting order that covers it, or to the background (-1). Only IEEE
/// arithmetic without transcendental functions is used, so results are identical everywhere.
/// </summary>
internal static class Rasterizer
{
    public static bool Covers(SceneObject o, double x, double y)
    {
        double h = o.Size / 2, dx = x - o.CenterX, dy = y - o.CenterY;
        switch (o.Shape)
        {
            case "circle": return dx * dx + dy * dy <= h * h;
            case "square": return Math.Abs(dx) <= h && Math.Abs(dy) <= h;
            case "triangle":
                // Apex (cx, cy - h), base from (cx - h, cy + h) to (cx + h, cy + h): half-width grows by 1/2 per pixel of depth.
                double depth = dy + h;
                return depth >= 0 && dy <= h && Math.Abs(dx) <= depth / 2;
            default: throw new InvalidInputException($"shape '{o.Shape}': the renderer draws only {string.Join(", ", WorldSpec.KnownShapes)}");
        }
    }

    /// <summary>Sample owners, indexed [((y * size + x) * n + b) * n + a].</summary>
    public static short[] Owners(int size, int n, IReadOnlyList<SceneObject> objects)
    {
        var owners = new short[size * size * n * n];
        Array.Fill(owners, (short)-1);
        for (short k = 0; k < objects.Count; k++)
        {
            var o = objects[k];
            double h = o.Size / 2;
            int x0 = Math.Max(0, (int)Math.Floor(o.CenterX - h)), x1 = Math.Min(size - 1, (int)Math.Ceiling(o.CenterX + h));
            int y0 = Math.Max(0, (int)Math.Floor(o.CenterY - h)), y1 = Math.Min(size - 1, (int)Math.Ceiling(o.CenterY + h));
            for (int y = y0; y <= y1; y++)
                for (int x = x0; x <= x1; x++)
                    for (int b = 0; b < n; b++)
                        for (int a = 0; a < n; a++)
                            if (Covers(o, x + (a + 0.5) / n, y + (b + 0.5) / n))
                                owners[((y * size + x) * n + b) * n + a] = k;
        }
        return owners;
    }

    /// <summary>Per pixel, how many of its n x n samples object <paramref name="k"/> owns.</summary>
    public static int[] Coverage(short[] owners, int size, int n, int k)
    {
        var counts = new int[size * size];
        int per = n * n;
        for (int p = 0; p < counts.Length; p++)
        {
            int c = 0;
            for (int s = 0; s < per; s++) if (owners[p * per + s] == k) c++;
            counts[p] = c;
        }
        return counts;
    }
}
