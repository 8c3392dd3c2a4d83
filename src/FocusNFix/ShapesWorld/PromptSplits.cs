namespace FocusNFix.ShapesWorld;

public enum Split { Train, Val, Test }

/// <summary>
/// The deterministic train/validation/test split of prompts (<see cref="SplitSpec.Rule"/>): some
/// (colour, shape, place) triples are held out for validation and test, so those combinations never
/// appear in training, while every colour, shape and place, and every pair of them, still does.
/// </summary>
public static class PromptSplits
{
    const ulong TripleSalt = 0x7121_9E5A_0000_0001UL, PromptSalt = 0x7121_9E5A_0000_0002UL;

    public static Split SplitOf(WorldSpec spec, SceneDescription d)
    {
        if (d.Objects.Any(spec.Splits.TestTriples.Contains)) return Split.Test;
        if (d.Objects.Any(spec.Splits.ValTriples.Contains)) return Split.Val;
        return Split.Train;
    }

    public static Split SplitOf(WorldSpec spec, string prompt) => SplitOf(spec, PromptGrammar.Parse(prompt, spec));

    /// <summary>The world's fixed prompt pool of a split.</summary>
    public static IReadOnlyList<string> Prompts(WorldSpec spec, Split split) => split switch
    {
        Split.Train => spec.Splits.TrainPrompts,
        Split.Val => spec.Splits.ValPrompts,
        _ => spec.Splits.TestPrompts,
    };

    public static Split ParseSplit(string name) => name.Trim().ToLowerInvariant() switch
    {
        "train" => Split.Train,
        "val" or "validation" => Split.Val,
        "test" => Split.Test,
        _ => throw new InvalidInputException($"split '{name}': expected train, val or test"),
    };

    public static string Name(Split split) => split switch { Split.Train => "train", Split.Val => "val", _ => "test" };

    /// <summary>
    /// Draws <paramref name="heldOutPerSplit"/> validation and as many test triples, no two of which share a
    /// (colour, shape), (shape, place) or (colour, place) pair, with shapes taken in turn so each split holds
    /// every shape about equally; then draws distinct prompt pools of the given sizes under the split rule.
    /// </summary>
    public static SplitSpec Generate(WorldSpec spec, long seed, int heldOutPerSplit, int trainPrompts, int valPrompts, int testPrompts)
    {
        var rng = new SplitMix64(seed, TripleSalt);
        var (val, test) = DrawTriples(spec, rng, heldOutPerSplit)
            ?? throw new InvalidInputException(
                $"cannot hold out {heldOutPerSplit} validation and {heldOutPerSplit} test triples without two sharing a pair; use fewer");
        var withTriples = spec.With(new SplitSpec(val, test, [], [], []));
        var sampler = new SceneSampler(withTriples);
        var prng = new SplitMix64(seed, PromptSalt);
        var pools = new[] { (Split.Train, trainPrompts), (Split.Val, valPrompts), (Split.Test, testPrompts) }
            .Select(t => DrawPrompts(sampler, prng, t.Item1, t.Item2)).ToArray();
        return new SplitSpec(val, test, pools[0], pools[1], pools[2]);
    }

    static (PromptObject[], PromptObject[])? DrawTriples(WorldSpec spec, SplitMix64 rng, int perSplit)
    {
        if (perSplit == 0) return ([], []);
        var all = (from c in spec.ShapePalette from s in spec.Shapes from p in spec.Places select new PromptObject(c.Name, s, p.Name)).ToList();
        for (int attempt = 0; attempt < 2000; attempt++)
        {
            var chosen = new List<PromptObject>();
            for (int i = 0; i < 2 * perSplit; i++)
            {
                string shape = spec.Shapes[i % spec.Shapes.Count];
                var options = all.Where(t => t.Shape == shape && chosen.All(c => Compatible(c, t))).ToList();
                if (options.Count == 0) break;
                chosen.Add(options[rng.NextInt(options.Count)]);
            }
            if (chosen.Count == 2 * perSplit)
                return (chosen.Where((_, i) => i % 2 == 0).ToArray(), chosen.Where((_, i) => i % 2 == 1).ToArray());
        }
        return null;
    }

    static bool Compatible(PromptObject a, PromptObject b) =>
        !(a.Colour == b.Colour && a.Shape == b.Shape) && !(a.Shape == b.Shape && a.Place == b.Place) && !(a.Colour == b.Colour && a.Place == b.Place);

    static string[] DrawPrompts(SceneSampler sampler, SplitMix64 rng, Split split, int count)
    {
        var seen = new HashSet<string>();
        var list = new List<string>();
        for (int tries = 0; list.Count < count; tries++)
        {
            if (tries > 1000 * (count + 10)) throw new InvalidInputException($"cannot draw {count} distinct {Name(split)} prompts from this world");
            string prompt = PromptGrammar.Format(sampler.SampleDescription(rng, split));
            if (seen.Add(prompt)) list.Add(prompt);
        }
        return list.ToArray();
    }
}
