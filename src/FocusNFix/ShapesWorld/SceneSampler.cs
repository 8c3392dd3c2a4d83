namespace FocusNFix.ShapesWorld;

/// <summary>
/// Draws scenes, deterministically from a seed (<see cref="SplitMix64"/>): background, 1..3 objects in distinct
/// places (listed in canonical place order, which is painting and prompt order), uniform colours and shapes,
/// size and position jitter, then the defects at the world's rates:
/// each object carries a hazard checker with its shape's rate, stamped on a block the object fully and visibly
/// covers, as close to its centroid as possible; each image carries a glitch patch with the glitch rate, centred on a
/// visible edge pixel of a random object and never touching a hazard; each image carries rot with the rot rate, on an
/// object without a hazard (<see cref="RotGrower"/>). A defect that finds no room is left out (the scene records only
/// defects that are drawn).
/// </summary>
public sealed class SceneSampler
{
    const ulong SceneSalt = 0x5CE7_E5A3_0000_0001UL, PromptSalt = 0x5CE7_E5A3_0000_0002UL;
    // Rot draws from streams of their own, so adding rot to a world leaves every other draw, and so every scene's
    // objects, hazards and glitch, as they were.
    const ulong SceneRotSalt = 0x5CE7_E5A3_0000_0003UL, PromptRotSalt = 0x5CE7_E5A3_0000_0004UL;
    readonly WorldSpec _spec;

    public SceneSampler(WorldSpec spec) { _spec = spec; }

    public WorldSpec Spec => _spec;

    /// <summary>The scene of a seed; with a split, the first draw of that seed's stream that falls in the split.</summary>
    public Scene Sample(long seed, Split? split = null)
    {
        var rng = new SplitMix64(seed, SceneSalt);
        var d = SampleDescription(rng, split);
        return Realize(d, rng, new SplitMix64(seed, SceneRotSalt), seed);
    }

    /// <summary>A scene for a given prompt: geometry and defects drawn from the seed.</summary>
    public Scene FromPrompt(string prompt, long seed) => Realize(PromptGrammar.Parse(prompt, _spec), seed);

    /// <summary>A scene for a description: checked against the world's vocabulary and rules, then drawn from the seed.</summary>
    public Scene Realize(SceneDescription d, long seed)
    {
        PromptGrammar.Parse(PromptGrammar.Format(d), _spec);
        return Realize(d, new SplitMix64(seed, PromptSalt), new SplitMix64(seed, PromptRotSalt), seed);
    }

    public SceneDescription SampleDescription(SplitMix64 rng, Split? split = null)
    {
        for (int tries = 0; tries < 100000; tries++)
        {
            var bg = _spec.BackgroundPalette[rng.NextInt(_spec.BackgroundPalette.Count)].Name;
            int count = _spec.MinObjects + rng.NextInt(_spec.MaxObjects - _spec.MinObjects + 1);
            // A partial Fisher-Yates shuffle picks the places; they are then put back in canonical order.
            var idx = Enumerable.Range(0, _spec.Places.Count).ToArray();
            for (int i = 0; i < count; i++)
            {
                int j = i + rng.NextInt(idx.Length - i);
                (idx[i], idx[j]) = (idx[j], idx[i]);
            }
            var places = idx.Take(count).Order().ToArray();
            var objects = places.Select(p => new PromptObject(
                _spec.ShapePalette[rng.NextInt(_spec.ShapePalette.Count)].Name,
                _spec.Shapes[rng.NextInt(_spec.Shapes.Count)],
                _spec.Places[p].Name)).ToArray();
            var d = new SceneDescription(bg, objects);
            if (split is null || PromptSplits.SplitOf(_spec, d) == split) return d;
        }
        throw new InvalidInputException($"this world yields no {PromptSplits.Name(split!.Value)} prompts (check its held-out triples)");
    }

    Scene Realize(SceneDescription d, SplitMix64 rng, SplitMix64 rotRng, long seed)
    {
        int size = _spec.ImageSize, n = _spec.SamplesPerAxis;
        var objects = d.Objects.Select(o =>
        {
            var place = _spec.Place(o.Place);
            double s = rng.NextDouble(_spec.ShapeSizeMin, _spec.ShapeSizeMax);
            double cx = place.CenterX + rng.NextDouble(-_spec.CenterJitter, _spec.CenterJitter);
            double cy = place.CenterY + rng.NextDouble(-_spec.CenterJitter, _spec.CenterJitter);
            return new SceneObject(o.Colour, o.Shape, o.Place, cx, cy, s);
        }).ToArray();
        var wantHazard = objects.Select(o => rng.NextBool(_spec.HazardRate(o.Shape))).ToArray();
        bool wantGlitch = rng.NextBool(_spec.GlitchRate);

        var owners = Rasterizer.Owners(size, n, objects);
        var coverage = Rasterizer.Coverage(owners, size, n, objects.Length);
        var hazards = new List<HazardStamp>();
        for (int k = 0; k < objects.Length; k++)
            if (wantHazard[k] && PlaceHazard(objects[k], k, coverage[k], rng) is { } h) hazards.Add(h);
        var glitch = wantGlitch ? PlaceGlitch(objects, coverage, hazards, rng) : null;
        var rot = _spec.Rot is { } rotSpec && rotRng.NextBool(rotSpec.Rate) ? RotGrower.Place(_spec, rotSpec, coverage, hazards, glitch, rotRng) : null;
        return new Scene(seed, d.Background, objects, hazards, glitch, rot) { Raster = (size, n, owners) };
    }

    HazardStamp? PlaceHazard(SceneObject o, int k, int[] coverage, SplitMix64 rng)
    {
        int size = _spec.ImageSize, full = _spec.SamplesPerAxis * _spec.SamplesPerAxis, side = _spec.HazardCellPx * _spec.HazardCells;
        double gx = o.CenterX, gy = o.CenterY + (o.Shape == "triangle" ? o.Size / 6 : 0);
        // Summed-area table of fully covered pixels: a block is a candidate when all its pixels are.
        var sat = new int[(size + 1) * (size + 1)];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                sat[(y + 1) * (size + 1) + x + 1] = (coverage[y * size + x] == full ? 1 : 0)
                    + sat[y * (size + 1) + x + 1] + sat[(y + 1) * (size + 1) + x] - sat[y * (size + 1) + x];
        var candidates = new List<(int X, int Y, double Dist)>();
        for (int by = 0; by + side <= size; by++)
            for (int bx = 0; bx + side <= size; bx++)
            {
                int inside = sat[(by + side) * (size + 1) + bx + side] - sat[by * (size + 1) + bx + side]
                           - sat[(by + side) * (size + 1) + bx] + sat[by * (size + 1) + bx];
                if (inside != side * side) continue;
                double dx = bx + side / 2.0 - gx, dy = by + side / 2.0 - gy;
                candidates.Add((bx, by, Math.Sqrt(dx * dx + dy * dy)));
            }
        if (candidates.Count == 0) return null;
        double best = candidates.Min(c => c.Dist);
        var near = candidates.Where(c => c.Dist <= best + 1.0).ToList();
        var pick = near[rng.NextInt(near.Count)];
        return new HazardStamp(k, pick.X, pick.Y, _spec.HazardCellPx, _spec.HazardCells);
    }

    GlitchStamp? PlaceGlitch(SceneObject[] objects, int[][] coverage, List<HazardStamp> hazards, SplitMix64 rng)
    {
        int size = _spec.ImageSize, half = (_spec.SamplesPerAxis * _spec.SamplesPerAxis + 1) / 2;
        bool horizontal = rng.NextBool(0.5);
        int first = rng.NextInt(objects.Length);
        for (int o = 0; o < objects.Length; o++)
        {
            int k = (first + o) % objects.Length;
            var cov = coverage[k];
            bool Inside(int x, int y) => x >= 0 && y >= 0 && x < size && y < size && cov[y * size + x] >= half;
            foreach (bool horiz in new[] { horizontal, !horizontal })
            {
                int w = horiz ? _spec.GlitchLongPx : _spec.GlitchShortPx, h = horiz ? _spec.GlitchShortPx : _spec.GlitchLongPx;
                var options = new List<(int X, int Y)>();
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                    {
                        if (!Inside(x, y) || (Inside(x - 1, y) && Inside(x + 1, y) && Inside(x, y - 1) && Inside(x, y + 1))) continue;
                        int px = x - w / 2, py = y - h / 2;
                        if (px < 0 || py < 0 || px + w > size || py + h > size) continue;
                        if (hazards.Any(hz => px < hz.X + hz.SidePx && hz.X < px + w && py < hz.Y + hz.SidePx && hz.Y < py + h)) continue;
                        options.Add((px, py));
                    }
                if (options.Count == 0) continue;
                var pick = options[rng.NextInt(options.Count)];
                return new GlitchStamp(k, pick.X, pick.Y, w, h);
            }
        }
        return null;
    }
}
