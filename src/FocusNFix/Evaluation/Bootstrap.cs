namespace FocusNFix.Evaluation;

/// <summary>One per-image value for a bootstrap: which prompt and which training seed (0 for a method with none) it belongs to.</summary>
public readonly record struct BootstrapValue(int Prompt, long TrainSeed, double Value);

/// <summary>A point estimate with its bootstrap percentile interval; NaN bounds when there was nothing to resample.</summary>
public readonly record struct Estimate(double Value, double Low, double High, int Count)
{
    public override string ToString() => $"{Value:G4} [{Low:G4}, {High:G4}]";
}

/// <summary>
/// Two-level percentile bootstrap over prompts and training seeds: each replicate draws the prompts with replacement
/// and, independently, the training seeds with replacement, and takes every value of each drawn (prompt, seed) pair
/// (the evaluation seeds of a prompt stay together), so the interval covers both what the prompts and what the
/// training run's randomness contribute. Deterministic for a given <c>seed</c>. NaN values are skipped, as in the
/// report's aggregates.
/// </summary>
public static class Bootstrap
{
    public const int DefaultReplicates = 1000;

    public static Estimate Interval(IReadOnlyList<BootstrapValue> values, Aggregation aggregation, int replicates = DefaultReplicates,
        double confidence = 0.95, int seed = 0)
    {
        if (replicates < 1) throw new ArgumentOutOfRangeException(nameof(replicates), replicates, "expected at least one replicate");
        if (!(confidence > 0 && confidence < 1)) throw new ArgumentOutOfRangeException(nameof(confidence), confidence, "expected a level in (0, 1)");
        var finite = values.Where(v => !double.IsNaN(v.Value)).ToList();
        if (finite.Count == 0) return new Estimate(double.NaN, double.NaN, double.NaN, 0);
        var point = Aggregate(finite.Select(v => v.Value).ToList(), aggregation);
        var prompts = finite.Select(v => v.Prompt).Distinct().OrderBy(p => p).ToArray();
        var seeds = finite.Select(v => v.TrainSeed).Distinct().OrderBy(s => s).ToArray();
        var cells = finite.GroupBy(v => (v.Prompt, v.TrainSeed)).ToDictionary(g => g.Key, g => g.Select(v => v.Value).ToArray());
        var rng = new Random(seed);
        var stats = new double[replicates];
        var sample = new List<double>(finite.Count * 2);
        var drawnSeeds = new long[seeds.Length];
        for (int r = 0; r < replicates; r++)
        {
            sample.Clear();
            for (int j = 0; j < seeds.Length; j++) drawnSeeds[j] = seeds[rng.Next(seeds.Length)];
            for (int i = 0; i < prompts.Length; i++)
            {
                int p = prompts[rng.Next(prompts.Length)];
                foreach (var s in drawnSeeds)
                    if (cells.TryGetValue((p, s), out var cell)) sample.AddRange(cell);
            }
            stats[r] = sample.Count == 0 ? double.NaN : Aggregate(sample, aggregation);
        }
        var ok = stats.Where(v => !double.IsNaN(v)).OrderBy(v => v).ToArray();
        double alpha = (1 - confidence) / 2;
        return new Estimate(point, Quantile(ok, alpha), Quantile(ok, 1 - alpha), finite.Count);
    }

    /// <summary>Mean, or median (an even count averages its two middle values; +Infinity sorts last, as PSNR of identical images needs).</summary>
    public static double Aggregate(IReadOnlyList<double> values, Aggregation aggregation)
    {
        if (values.Count == 0) return double.NaN;
        if (aggregation == Aggregation.Mean) return values.Average();
        var sorted = values.OrderBy(v => v).ToArray();
        int n = sorted.Length;
        if (n % 2 == 1) return sorted[n / 2];
        double a = sorted[n / 2 - 1], b = sorted[n / 2];
        return a == b ? a : (a + b) / 2;
    }

    /// <summary>Linear-interpolation quantile of sorted values (numpy's default); NaN for none.</summary>
    public static double Quantile(double[] sorted, double q)
    {
        if (sorted.Length == 0) return double.NaN;
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        if (lo == hi || sorted[lo] == sorted[hi]) return sorted[lo];
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }
}
