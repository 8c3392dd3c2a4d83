namespace FocusNFix.ShapesWorld;

/// <summary>
/// Places rot (<see cref="RotSpec"/>) in a sampled scene: picks an object without a hazard checker, a share of its area
/// in the spec's range, and grows a ragged 4-connected blob of that many pixels from a pixel at the edge of the object's
/// fully covered region into it. Growth takes, among the pixels next to the blob, the one nearest the start pixel after
/// a random offset of up to <see cref="Raggedness"/> pixels per pixel, so the blob is compact but not round.
/// </summary>
internal static class RotGrower
{
    const double Raggedness = 2.5;

    /// <param name="coverage">Per object and pixel, how many of the pixel's samples the object owns (<see cref="Rasterizer.Coverage"/>).</param>
    /// <returns>Null when no object without a hazard has room for the smallest share.</returns>
    public static RotStamp? Place(WorldSpec spec, RotSpec rot, int[][] coverage, IReadOnlyList<HazardStamp> hazards, GlitchStamp? glitch, SplitMix64 rng)
    {
        int size = spec.ImageSize, full = spec.SamplesPerAxis * spec.SamplesPerAxis, half = (full + 1) / 2;
        bool Stamped(int x, int y) =>
            hazards.Any(h => x >= h.X && x < h.X + h.SidePx && y >= h.Y && y < h.Y + h.SidePx)
            || (glitch is { } g && x >= g.X && x < g.X + g.Width && y >= g.Y && y < g.Y + g.Height);

        var options = new List<(int Object, int Area, List<int> Region)>();
        for (int k = 0; k < coverage.Length; k++)
        {
            if (hazards.Any(h => h.ObjectIndex == k)) continue;
            int area = coverage[k].Count(c => c >= half);
            var free = new bool[size * size];
            for (int p = 0; p < free.Length; p++) free[p] = coverage[k][p] == full && !Stamped(p % size, p / size);
            var region = LargestComponent(free, size);
            if (area > 0 && region.Count >= Math.Ceiling(rot.MinAreaFraction * area)) options.Add((k, area, region));
        }
        if (options.Count == 0) return null;
        var (obj, objArea, pixels) = options[rng.NextInt(options.Count)];

        double hi = Math.Min(rot.MaxAreaFraction, (double)pixels.Count / objArea);
        double fraction = rng.NextDouble(rot.MinAreaFraction, hi);
        int target = (int)Math.Round(fraction * objArea, MidpointRounding.AwayFromZero);
        target = Math.Clamp(target, (int)Math.Ceiling(rot.MinAreaFraction * objArea), Math.Min((int)Math.Floor(hi * objArea + 1e-9), pixels.Count));

        var inRegion = new bool[size * size];
        foreach (int p in pixels) inRegion[p] = true;
        // Noise for every region pixel in index order, so the blob depends only on the stream and the region.
        var noise = new Dictionary<int, double>();
        foreach (int p in pixels) noise[p] = rng.NextDouble();
        var edge = pixels.Where(p => Neighbours(p, size).Count() < 4 || Neighbours(p, size).Any(q => !inRegion[q])).ToList();
        int start = edge.Count > 0 ? edge[rng.NextInt(edge.Count)] : pixels[rng.NextInt(pixels.Count)];
        double sx = start % size, sy = start / size;
        double Priority(int p)
        {
            double dx = p % size - sx, dy = p / size - sy;
            return Math.Sqrt(dx * dx + dy * dy) + Raggedness * noise[p];
        }

        var blob = new HashSet<int> { start };
        var frontier = new SortedSet<(double Priority, int Pixel)>();
        void Open(int p)
        {
            foreach (int q in Neighbours(p, size))
                if (inRegion[q] && !blob.Contains(q)) frontier.Add((Priority(q), q));
        }
        Open(start);
        while (blob.Count < target && frontier.Count > 0)
        {
            var next = frontier.Min;
            frontier.Remove(next);
            if (!blob.Add(next.Pixel)) continue;
            Open(next.Pixel);
        }
        var list = blob.Order().ToArray();
        return new RotStamp(obj, list, (double)list.Length / objArea);
    }

    static IEnumerable<int> Neighbours(int p, int size)
    {
        int x = p % size, y = p / size;
        if (x > 0) yield return p - 1;
        if (x < size - 1) yield return p + 1;
        if (y > 0) yield return p - size;
        if (y < size - 1) yield return p + size;
    }

    /// <summary>The largest 4-connected set of true pixels (the first found on a tie), in index order.</summary>
    static List<int> LargestComponent(bool[] on, int size)
    {
        var seen = new bool[on.Length];
        var best = new List<int>();
        for (int s = 0; s < on.Length; s++)
        {
            if (!on[s] || seen[s]) continue;
            var comp = new List<int>();
            var stack = new Stack<int>();
            stack.Push(s);
            seen[s] = true;
            while (stack.Count > 0)
            {
                int p = stack.Pop();
                comp.Add(p);
                foreach (int q in Neighbours(p, size))
                    if (on[q] && !seen[q]) { seen[q] = true; stack.Push(q); }
            }
            if (comp.Count > best.Count) best = comp;
        }
        best.Sort();
        return best;
    }
}
