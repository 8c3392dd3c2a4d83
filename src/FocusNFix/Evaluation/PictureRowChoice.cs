namespace FocusNFix.Evaluation;

/// <summary>
/// Which (prompt, seed) pairs get a row of pictures: those where the methods differ most, i.e. the largest spread
/// (max − min over the methods, base model included) of the target figure, the reward being fixed; ties (e.g. an
/// evaluation of the base model alone, where every spread is 0) go to rows with a non-empty mask, then to the earlier
/// position. A total order over the whole run, so each shard's best rows contain the whole run's best rows among its own.
/// </summary>
public static class PictureRowChoice
{
    /// <summary>The spread of a pair whose target figure is undefined for every method or all but one (ranked last).</summary>
    public const double Undefined = -1;

    /// <summary>max − min of <paramref name="figure"/> over the images of one (prompt, seed), NaN values left out; <see cref="Undefined"/> with fewer than one value.</summary>
    public static double Spread(IEnumerable<ImageRecord> imagesOfOnePair, string? figure)
    {
        if (figure is null) return Undefined;
        var values = imagesOfOnePair.Select(i => i.Metrics.TryGetValue(figure, out var v) ? v : double.NaN).Where(v => !double.IsNaN(v)).ToList();
        if (values.Count == 0) return Undefined;
        double spread = values.Max() - values.Min();
        return double.IsNaN(spread) ? Undefined : spread;  // +Inf − +Inf
    }

    /// <summary>The indices of the <paramref name="take"/> rows to show, best first.</summary>
    public static List<int> Order(IReadOnlyList<double> spreads, IReadOnlyList<bool> maskNonEmpty, IReadOnlyList<int> positions, int take)
    {
        if (spreads.Count != maskNonEmpty.Count || spreads.Count != positions.Count)
            throw new ArgumentException("expected one spread, mask flag and position per candidate row");
        return Enumerable.Range(0, spreads.Count)
            .OrderByDescending(k => spreads[k]).ThenByDescending(k => maskNonEmpty[k]).ThenBy(k => positions[k])
            .Take(Math.Max(0, take)).ToList();
    }

    /// <summary>The sentence the report prints above the pictures.</summary>
    public static string Rule(string? figure, int methods) =>
        figure is null || methods < 2
            ? "Rows: images with a non-empty problem mask first, then in prompt order."
            : $"Rows chosen automatically where the methods differ most: the (prompt, seed) pairs with the largest spread " +
              $"(max − min over the {methods} methods, base model included) of {figure}, the reward being fixed; ties: a non-empty problem mask first, then prompt order.";
}
