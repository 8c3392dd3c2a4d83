using System.Globalization;
using System.Text;
using FocusNFix.Evaluation;

namespace FocusNFix.Experiments;

/// <summary>
/// The top of the demo's report: the few figures that make the case (defect rate, alignment, preservation outside the
/// mask) and a verdict in words: what Focus-N-Fix did against the base model and the global constraint, what every
/// other method cost, and how much one image moves a rate, since the demo has one training seed.
/// </summary>
public static class DemoVerdict
{
    public const string CorrectFigure = "oracle_all_objects_correct";

    public static string RateFigure(string defect) => $"oracle_{defect}";

    public static List<string> HeadlineMetrics(string defect) =>
        new() { RateFigure(defect), CorrectFigure, "judge_alignment", MetricNames.PsnrOutside, MetricNames.SsimOutside };

    /// <summary>The verdict as markdown paragraphs; "" when the base model's or Focus-N-Fix's defect rate is missing.</summary>
    public static string Compose(EvaluationResult r, string defect, IReadOnlyList<DemoMethod> trained)
    {
        var figures = r.Summaries.GroupBy(s => s.Method).ToDictionary(g => g.Key, g => g.First().Aggregates);
        string rate = RateFigure(defect), psnr = MetricNames.PsnrOutside;
        if (!figures.TryGetValue(r.BaseMethod, out var b) || !figures.TryGetValue("focus-n-fix", out var f)
            || !b.ContainsKey(rate) || !f.ContainsKey(rate)) return "";
        static string Show(string figure, Dictionary<string, double> of) =>
            of.TryGetValue(figure, out var v) ? ReportWriter.FormatHeadline(figure, v) : ReportWriter.Missing;
        string Setting(string method) => trained.FirstOrDefault(t => t.Name == method) is { } t && method != "draft"
            ? FormattableString.Invariant($" (lambda {t.Lambda})") : "";

        var sb = new StringBuilder();
        sb.Append($"**Focus-N-Fix{Setting("focus-n-fix")}** took the {defect} rate from {Show(rate, b)} to **{Show(rate, f)}**, ")
          .Append($"kept the rest of the picture at a median PSNR outside the mask of {Show(psnr, f)}, ")
          .Append($"with every object correct in {Show(CorrectFigure, f)} of images (base model {Show(CorrectFigure, b)}).");
        if (figures.TryGetValue("global", out var g) && g.ContainsKey(rate))
        {
            sb.Append($" The global constraint{Setting("global")}: {Show(rate, g)} at {Show(psnr, g)}");
            if (f.TryGetValue(psnr, out var fp) && g.TryGetValue(psnr, out var gp) && double.IsFinite(fp) && double.IsFinite(gp))
                sb.Append(FormattableString.Invariant($"; Focus-N-Fix is {fp - gp:+0.0;-0.0;0.0} dB outside the mask and {100 * (f[rate] - g[rate]):+0.0;-0.0;0.0} points of {defect} from it"));
            sb.Append('.');
        }
        var others = r.AllMethods().Where(m => m != r.BaseMethod && m != "focus-n-fix" && m != "global" && figures.ContainsKey(m)).ToList();
        if (others.Count > 0)
            sb.Append("\n\nThe other methods (").Append(defect).Append(" rate, PSNR outside, every object correct): ")
              .Append(string.Join("; ", others.Select(m => $"{m}{Setting(m)} {Show(rate, figures[m])}, {Show(psnr, figures[m])}, {Show(CorrectFigure, figures[m])}")))
              .Append('.');
        int images = r.Prompts.Count * Math.Max(1, r.Seeds.Count);
        if (images > 0)
            sb.Append("\n\nOne training seed and ").Append(images).Append(" test images: one image moves a rate by ")
              .Append((100.0 / images).ToString("0.0", CultureInfo.InvariantCulture))
              .Append(" points, so differences of a few points are noise. `fnf sweep` draws the fronts with intervals over prompts and three training seeds.");
        return sb.ToString();
    }
}
