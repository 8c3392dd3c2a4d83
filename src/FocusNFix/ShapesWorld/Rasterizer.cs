namespace FocusNFix.ShapesWorld;

/// <summary>
/// Point-sampled coverage shared by the sampler (to place defects on visible object pixels), the renderer and the
/// oracle's shape fits. Each pixel holds n x n samples at ((a + 0.5) / n, (b + 0.5) / n) inside it; a sample belongs
/// to the last object in painting order that covers it, or to the background (-1). Only IEEE arithmetic without
/// transcendental functions is used, so results are identical everywhere.
/// </summary>
internal static class Rasterizer
{
    /// <summary>A shape ready for many point tests.</summary>
    public readonly struct Shape
    {
        readonly int _kind;
        readonly double _cx, _cy, _h, _h2;

        public Shape(string shape, double cx, double cy, double size)
        {
            _kind = shape switch
            {
                "circle" => 0,
                "square" => 1,
                "triangle" => 2,
                _ => throw new InvalidInputException($"shape '{shape}': the renderer draws only {string.Join(", ", WorldSpec.KnownShapes)}"),
            };
            _cx = cx; _cy = cy; _h = size / 2; _h2 = _h * _h;
        }

        public Shape(SceneObject o) : this(o.Shape, o.CenterX, o.CenterY, o.Size) { }

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public bool Covers(double x, double y)
        {
            double dx = x - _cx, dy = y - _cy;
            switch (_kind)
            {
                case 0: return dx * dx + dy * dy <= _h2;
                case 1: return Math.Abs(dx) <= _h && Math.Abs(dy) <= _h;
                default:
                    // Apex (cx, cy - h), base from (cx - h, cy + h) to (cx + h, cy + h): the half-width grows by 1/2 per pixel of depth.
                    double depth = dy + _h;
                    return depth >= 0 && dy <= _h && Math.Abs(dx) <= depth / 2;
            }
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
            var shape = new Shape(o);
            double h = o.Size / 2;
            int x0 = Math.Max(0, (int)Math.Floor(o.CenterX - h)), x1 = Math.Min(size - 1, (int)Math.Ceiling(o.CenterX + h));
            int y0 = Math.Max(0, (int)Math.Floor(o.CenterY - h)), y1 = Math.Min(size - 1, (int)Math.Ceiling(o.CenterY + h));
            for (int y = y0; y <= y1; y++)
                for (int x = x0; x <= x1; x++)
                    for (int b = 0; b < n; b++)
                        for (int a = 0; a < n; a++)
                            if (shape.Covers(x + (a + 0.5) / n, y + (b + 0.5) / n))
                                owners[((y * size + x) * n + b) * n + a] = k;
        }
        return owners;
    }

    /// <summary>Per object and pixel, how many of the pixel's n x n samples the object owns: [object][y * size + x].</summary>
    public static int[][] Coverage(short[] owners, int size, int n, int objects)
    {
        var counts = new int[objects][];
        for (int k = 0; k < objects; k++) counts[k] = new int[size * size];
        int per = n * n;
        for (int p = 0; p < size * size; p++)
            for (int s = 0; s < per; s++)
            {
                int k = owners[p * per + s];
                if (k >= 0) counts[k][p]++;
            }
        return counts;
    }
}
