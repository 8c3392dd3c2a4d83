namespace FocusNFix.Evaluation;

/// <summary>
/// The smoothing of a training curve's plot: an exponential moving average over a span of w logged points
/// (α = 2 / (w + 1)), debiased at the start as TensorBoard does (divided by 1 − (1 − α)^n, so the first points are not
/// pulled towards 0). The span grows with the curve (a tenth of its points, at least 1, at most 50): a short curve is
/// barely smoothed, a long noisy one enough to show its trend. Non-finite values are skipped (their smoothed value
/// repeats the last one).
/// </summary>
public static class CurveSmoothing
{
    public const int MaxSpan = 50;

    /// <summary>The span for a curve of <paramref name="count"/> points.</summary>
    public static int SpanFor(int count) => Math.Clamp(count / 10, 1, MaxSpan);

    public static double[] Ema(IReadOnlyList<double> values, int span)
    {
        if (span < 1) throw new ArgumentOutOfRangeException(nameof(span), span, "expected a span of at least 1 point");
        double alpha = 2.0 / (span + 1), keep = 1 - alpha;
        var result = new double[values.Count];
        double average = 0, weight = 0, last = double.NaN;
        for (int i = 0; i < values.Count; i++)
        {
            if (double.IsFinite(values[i]))
            {
                average = keep * average + alpha * values[i];
                weight = keep * weight + alpha;
                last = average / weight;
            }
            result[i] = last;
        }
        return result;
    }

    /// <summary>How the plots describe it.</summary>
    public static string Description(int span) =>
        span <= 1 ? "raw values (too few points to smooth)" : $"bold: exponential moving average over {span} points (α = 2/({span}+1), debiased); faint: raw values";
}
