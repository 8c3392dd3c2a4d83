using System.Globalization;
using System.Text;
using FocusNFix.Evaluation;

namespace FocusNFix.Experiments;

/// <summary>Focus-N-Fix's figure at one of its front points against the other method's front matched to it.</summary>
public sealed class MatchedComparison
{
    /// <summary>The Focus-N-Fix setting (a point on its front).</summary>
    public string Setting { get; set; } = "";
    public string Label { get; set; } = "";
    /// <summary>The figure matched on (the defect rate or the PSNR outside), Focus-N-Fix's point estimate.</summary>
    public double MatchedAt { get; set; }
    /// <summary>The figure compared: Focus-N-Fix's estimate, and the other front's, interpolated at <see cref="MatchedAt"/>.</summary>
    public Estimate Mine { get; set; }
    public Estimate Other { get; set; }
    /// <summary>Mine − Other, signed so that positive means Focus-N-Fix is better, with the conservative interval [Gap.Low, Gap.High].</summary>
    public Estimate Gap { get; set; }
}

/// <summary>A method's setting whose defect rate is closest to Focus-N-Fix's reference point, with the headline figures.</summary>
public sealed class MethodAtRate
{
    public string Method { get; set; } = "";
    public string Setting { get; set; } = "";
    public string Label { get; set; } = "";
    public Dictionary<string, Estimate> Figures { get; set; } = new();
}

/// <summary>
/// The verdict box at the top of a sweep report, computed from the points: does Focus-N-Fix's front dominate the global
/// constraint's, as issue 11 accepts it? Over the range where both remove at least half of the base model's defects
/// (defect rate ≤ ½ the base rate), either at matched defect rate its median PSNR outside the mask is ≥ 3 dB higher, or at
/// matched PSNR its defect rate is ≥ 10 points lower, with non-overlapping 95% intervals, at every Focus-N-Fix front point
/// in the range. "Matched": the other method's front (its Pareto-optimal settings for defect rate against PSNR outside)
/// linearly interpolated between the two settings that bracket Focus-N-Fix's point estimate, each interval bound
/// interpolated the same way; never extrapolated (a point outside the other front's span is not matched). The gap's
/// interval [mine.low − other.high, mine.high − other.low] is conservative: it excludes 0 exactly when the two intervals
/// do not overlap. Alignment (the oracle's every-object-correct rate) must stay within 2 points of the base model's at
/// those points. Whatever the outcome, it is said plainly, and the other methods are shown at their closest defect rate.
/// </summary>
public sealed class SweepVerdict
{
    public const string FocusNFix = "focus-n-fix", Global = "global";
    public const double MinPsnrGap = 3, MinDefectGap = 0.10, MaxAlignmentDrop = 0.02, MinRemovedShare = 0.5;
    public const string AlignmentFigure = "oracle_all_objects_correct", JudgeFigure = "judge_alignment";

    public const string Dominates = "dominates", DoesNotDominate = "does not dominate", NoOverlap = "no overlap", NotComparable = "not comparable";

    /// <summary>One of <see cref="Dominates"/>, <see cref="DoesNotDominate"/>, <see cref="NoOverlap"/>, <see cref="NotComparable"/>.</summary>
    public string Outcome { get; set; } = NotComparable;
    /// <summary>Why, in one sentence.</summary>
    public string Reason { get; set; } = "";
    /// <summary>The defect rate at or below which a method removed at least half of the base model's defects.</summary>
    public double RangeLimit { get; set; } = double.NaN;
    public List<MatchedComparison> AtMatchedDefect { get; set; } = new();
    public List<MatchedComparison> AtMatchedPsnr { get; set; } = new();
    /// <summary>Focus-N-Fix's alignment minus the base model's at each compared point (null when none was compared).</summary>
    public List<MatchedComparison> Alignment { get; set; } = new();
    public bool? AlignmentKept { get; set; }
    /// <summary>Focus-N-Fix's reference point (its lowest defect rate in the range) and every method at its closest defect rate.</summary>
    public List<MethodAtRate> Closest { get; set; } = new();

    public static SweepVerdict Of(SweepPoint basePoint, IReadOnlyList<SweepPoint> points, string defectFigure)
    {
        var v = new SweepVerdict();
        var psnr = MetricNames.PsnrOutside;
        var fnf = Front(points.Where(p => p.Method == FocusNFix).ToList(), defectFigure, psnr);
        var global = Front(points.Where(p => p.Method == Global).ToList(), defectFigure, psnr);
        double baseRate = Value(basePoint, defectFigure);
        if (fnf.Count == 0 || global.Count == 0)
            return v.Not(NotComparable, $"no {(fnf.Count == 0 ? "Focus-N-Fix" : "global constraint")} setting with finite {defectFigure} and {psnr}: nothing to compare");
        if (!(baseRate > 0))
            return v.Not(NotComparable, $"the base model's {defectFigure} is {Pct(baseRate)}: there is no defect to remove");
        v.RangeLimit = baseRate * MinRemovedShare;
        var inRange = fnf.Where(p => Value(p, defectFigure) <= v.RangeLimit).ToList();
        var globalInRange = global.Where(p => Value(p, defectFigure) <= v.RangeLimit).ToList();

        foreach (var p in inRange)
        {
            double d = Value(p, defectFigure);
            if (Interpolate(global, defectFigure, d, psnr) is Estimate other)
                v.AtMatchedDefect.Add(Compare(p, d, p.Figures[psnr], other, higherIsBetter: true));
            double q = Value(p, psnr);
            if (Interpolate(global, psnr, q, defectFigure) is Estimate otherRate && otherRate.Value <= v.RangeLimit)
                v.AtMatchedPsnr.Add(Compare(p, q, p.Figures[defectFigure], otherRate, higherIsBetter: false));
        }

        var reference = (inRange.Count > 0 ? inRange : fnf).OrderBy(p => Value(p, defectFigure)).ThenByDescending(p => Value(p, psnr)).First();
        v.Closest.Add(At(reference));
        foreach (var method in points.Select(p => p.Method).Where(m => m != FocusNFix).Distinct())
        {
            var closest = points.Where(p => p.Method == method && double.IsFinite(Value(p, defectFigure)))
                .OrderBy(p => Math.Abs(Value(p, defectFigure) - Value(reference, defectFigure))).ThenByDescending(p => Value(p, psnr)).FirstOrDefault();
            if (closest != null) v.Closest.Add(At(closest));
        }

        var compared = v.AtMatchedDefect.Concat(v.AtMatchedPsnr).Select(c => c.Setting).Distinct().ToList();
        if (basePoint.Figures.TryGetValue(AlignmentFigure, out var baseAlignment))
            foreach (var p in (compared.Count > 0 ? inRange.Where(p => compared.Contains(p.Setting)) : new[] { reference }))
                if (p.Figures.TryGetValue(AlignmentFigure, out var a))
                    v.Alignment.Add(Compare(p, Value(p, defectFigure), a, baseAlignment, higherIsBetter: true));
        if (v.Alignment.Count > 0) v.AlignmentKept = v.Alignment.All(c => c.Gap.Value >= -MaxAlignmentDrop);

        if (v.AtMatchedDefect.Count == 0 && v.AtMatchedPsnr.Count == 0)
            return v.Not(NoOverlap, inRange.Count == 0 || globalInRange.Count == 0
                ? $"no overlap range: {(inRange.Count == 0 ? "Focus-N-Fix" : "the global constraint")} has no front point that removes at least half of the base model's defects ({defectFigure} ≤ {Pct(v.RangeLimit)}%)"
                : "no overlap range: in the range where both remove at least half of the defects, no Focus-N-Fix front point falls within the span of the global constraint's front, in defect rate or in PSNR outside");
        bool psnrWins = v.AtMatchedDefect.Count > 0 && v.AtMatchedDefect.All(c => c.Gap.Value >= MinPsnrGap && c.Gap.Low > 0);
        bool rateWins = v.AtMatchedPsnr.Count > 0 && v.AtMatchedPsnr.All(c => c.Gap.Value >= MinDefectGap && c.Gap.Low > 0);
        if (psnrWins || rateWins)
        {
            v.Outcome = Dominates;
            v.Reason = psnrWins
                ? $"at every matched defect rate ({v.AtMatchedDefect.Count} point(s)) its median PSNR outside is ≥ {MinPsnrGap:0} dB higher with non-overlapping intervals"
                : $"at every matched PSNR ({v.AtMatchedPsnr.Count} point(s)) its defect rate is ≥ {MinDefectGap * 100:0} points lower with non-overlapping intervals";
            return v;
        }
        var all = v.AtMatchedDefect.Concat(v.AtMatchedPsnr).ToList();
        v.Outcome = DoesNotDominate;
        v.Reason = all.Any(c => c.Gap.Value < 0) ? "the global constraint is better at some matched point"
            : all.Any(c => c.Gap.Low <= 0) ? "the intervals overlap at some matched point"
            : $"the gap is below {MinPsnrGap:0} dB (matched defect rate) and below {MinDefectGap * 100:0} points (matched PSNR) at some matched point";
        return v;
    }

    SweepVerdict Not(string outcome, string reason)
    {
        Outcome = outcome;
        Reason = reason;
        return this;
    }

    /// <summary>The points of one method on its front of <paramref name="x"/> (minimised) against <paramref name="y"/> (maximised), finite ones only, by ascending x.</summary>
    static List<SweepPoint> Front(List<SweepPoint> points, string x, string y)
    {
        var finite = points.Where(p => double.IsFinite(Value(p, x)) && double.IsFinite(Value(p, y))).ToList();
        return ParetoFront.Of(finite.Select(p => (Value(p, x), Value(p, y))).ToList()).Select(i => finite[i])
            .OrderBy(p => Value(p, x)).ThenBy(p => Value(p, y)).ToList();
    }

    /// <summary>
    /// The front's <paramref name="figure"/> at <paramref name="along"/> = <paramref name="at"/>: linear between the two
    /// front points that bracket it (value and both bounds); null outside the front's span. Along a front both figures
    /// rise together, so its points sorted by either are in the same order.
    /// </summary>
    public static Estimate? Interpolate(IReadOnlyList<SweepPoint> front, string along, double at, string figure)
    {
        var pts = front.Where(p => double.IsFinite(Value(p, along)) && p.Figures.ContainsKey(figure)).OrderBy(p => Value(p, along)).ToList();
        if (pts.Count == 0 || !double.IsFinite(at) || at < Value(pts[0], along) || at > Value(pts[^1], along)) return null;
        for (int i = 0; i < pts.Count; i++)
        {
            double xi = Value(pts[i], along);
            if (xi == at) return pts.Where(p => Value(p, along) == at).Select(p => p.Figures[figure]).OrderByDescending(e => e.Value).First();
            if (i + 1 < pts.Count && xi < at && at < Value(pts[i + 1], along))
            {
                double t = (at - xi) / (Value(pts[i + 1], along) - xi);
                Estimate a = pts[i].Figures[figure], b = pts[i + 1].Figures[figure];
                double L(double u, double w) => u + t * (w - u);
                return new Estimate(L(a.Value, b.Value), L(a.Low, b.Low), L(a.High, b.High), Math.Min(a.Count, b.Count));
            }
        }
        return null;
    }

    static MatchedComparison Compare(SweepPoint p, double at, Estimate mine, Estimate other, bool higherIsBetter)
    {
        var gap = higherIsBetter
            ? new Estimate(mine.Value - other.Value, mine.Low - other.High, mine.High - other.Low, 0)
            : new Estimate(other.Value - mine.Value, other.Low - mine.High, other.High - mine.Low, 0);
        return new MatchedComparison { Setting = p.Setting, Label = p.Label, MatchedAt = at, Mine = mine, Other = other, Gap = gap };
    }

    static MethodAtRate At(SweepPoint p) => new()
    {
        Method = p.Method, Setting = p.Setting, Label = p.Label,
        Figures = p.Figures.Where(f => f.Key == MetricNames.PsnrOutside || f.Key.StartsWith("oracle_", StringComparison.Ordinal) && !f.Key.Contains("rot_") || f.Key == JudgeFigure)
            .ToDictionary(f => f.Key, f => f.Value),
    };

    static double Value(SweepPoint p, string figure) => p.Figures.TryGetValue(figure, out var e) ? e.Value : double.NaN;

    static string Pct(double share) => double.IsNaN(share) ? "n/a" : (share * 100).ToString("F1", CultureInfo.InvariantCulture);

    static string Db(double db) => double.IsNaN(db) ? "n/a" : db.ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture);

    /// <summary>The box: a markdown blockquote, the outcome first, then the figures behind it and the other methods at their closest defect rate.</summary>
    public string Markdown(string defectFigure, SweepPoint basePoint)
    {
        var sb = new StringBuilder();
        string headline = Outcome switch
        {
            Dominates => "Focus-N-Fix's front **dominates** the global constraint's",
            DoesNotDominate => "Focus-N-Fix does **not** win against the global constraint",
            NoOverlap => "Focus-N-Fix and the global constraint **cannot be compared** (no overlap range)",
            _ => "**No verdict**",
        };
        sb.AppendLine($"> **Verdict:** {headline}: {Reason}.");
        if (!double.IsNaN(RangeLimit))
            sb.AppendLine($"> Range compared: where both remove ≥ {MinRemovedShare * 100:0}% of the base model's defects ({defectFigure} ≤ {Pct(RangeLimit)}%, base {Pct(Value(basePoint, defectFigure))}%).");
        foreach (var c in AtMatchedDefect)
            sb.AppendLine($"> - vs global constraint at matched defect rate {Pct(c.MatchedAt)}% ({c.Label}): median PSNR outside the mask **{Db(c.Gap.Value)} dB** [{Db(c.Gap.Low)}, {Db(c.Gap.High)}] " +
                          $"({Fmt(c.Mine, 1)} vs {Fmt(c.Other, 1)} dB)");
        foreach (var c in AtMatchedPsnr)
            sb.AppendLine($"> - vs global constraint at matched PSNR outside {c.MatchedAt.ToString("F1", CultureInfo.InvariantCulture)} dB ({c.Label}): defect rate **{Db(c.Gap.Value * 100)} points lower** [{Db(c.Gap.Low * 100)}, {Db(c.Gap.High * 100)}] " +
                          $"({Fmt(c.Mine, 100)} vs {Fmt(c.Other, 100)}%)");
        foreach (var c in Alignment)
            sb.AppendLine($"> - alignment ({AlignmentFigure}) vs the base model at {Pct(c.MatchedAt)}% ({c.Label}): **{Db(c.Gap.Value * 100)} points** [{Db(c.Gap.Low * 100)}, {Db(c.Gap.High * 100)}] " +
                          $"({Fmt(c.Mine, 100)} vs {Fmt(c.Other, 100)}%)");
        if (AlignmentKept is bool kept)
            sb.AppendLine($"> - alignment {(kept ? "kept" : "**not kept**")}: within {MaxAlignmentDrop * 100:0} points of the base model's (point estimates) {(kept ? "at every point compared" : "fails at some point compared")}.");
        if (Closest.Count > 0)
        {
            sb.AppendLine(">");
            sb.AppendLine($"> Every method at the defect rate closest to Focus-N-Fix's lowest in the range ({Closest[0].Label}); what each cost:");
            sb.AppendLine(">");
            sb.AppendLine($"> | method | setting | {defectFigure} % ↓ | psnr_outside dB ↑ | {AlignmentFigure} % ↑ | {JudgeFigure} ↑ |");
            sb.AppendLine("> |---|---|---|---|---|---|");
            foreach (var m in new[] { new MethodAtRate { Method = "base", Label = "base model", Figures = basePoint.Figures } }.Concat(Closest))
                sb.AppendLine($"> | {m.Method} | {m.Label} | {Cell(m, defectFigure, 100)} | {Cell(m, MetricNames.PsnrOutside, 1)} | {Cell(m, AlignmentFigure, 100)} | {Cell(m, JudgeFigure, 1, "F3")} |");
        }
        sb.AppendLine(">");
        sb.AppendLine("> Matched: the global constraint's Pareto front (defect rate vs PSNR outside) linearly interpolated between the two settings that bracket " +
                      "Focus-N-Fix's point estimate, each interval bound likewise; never extrapolated. Gap interval [mine.low − other.high, mine.high − other.low]: " +
                      "conservative, it excludes 0 exactly when the two 95% intervals do not overlap. Acceptance: ≥ 3 dB (or ≥ 10 points) with non-overlapping intervals at every matched point.");
        return sb.ToString();
    }

    static string Cell(MethodAtRate m, string figure, double k, string format = "F1") =>
        m.Figures.TryGetValue(figure, out var e) ? Fmt(e, k, format) : "—";

    static string Fmt(Estimate e, double k, string format = "F1")
    {
        string F(double x) => double.IsNaN(x) ? "n/a" : double.IsPositiveInfinity(x) ? "inf" : (x * k).ToString(format, CultureInfo.InvariantCulture);
        return $"{F(e.Value)} [{F(e.Low)}, {F(e.High)}]";
    }
}
