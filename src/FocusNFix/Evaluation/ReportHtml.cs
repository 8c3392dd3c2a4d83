using System.Globalization;
using System.Net;
using System.Text;

namespace FocusNFix.Evaluation;

/// <summary>
/// report.html: one file with its CSS inline and no scripts or network references; pictures and plots by relative
/// path. Small pictures are scaled up to a fixed width with nearest-neighbour pixels (<c>image-rendering: pixelated</c>).
/// </summary>
public static class ReportHtml
{
    public const int PictureWidth = 128;

    const string Css = """
        body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 24px; color: #1f2328; max-width: 1400px; }
        h1 { font-size: 1.6em; margin-bottom: 4px; }
        h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 32px; }
        .meta { color: #59636e; margin: 0 0 16px 0; }
        table.metrics { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 8px 0; }
        table.metrics th, table.metrics td { border: 1px solid #d0d7de; padding: 4px 10px; }
        table.metrics th { background: #f6f8fa; }
        table.metrics td.num { text-align: right; }
        table.metrics .target { background: #fff8c5; }
        blockquote.verdict { border-left: 4px solid #0969da; background: #f6f8fa; margin: 12px 0; padding: 4px 16px; }
        .better { color: #1a7f37; } .worse { color: #cf222e; }
        .note { color: #59636e; font-size: 0.9em; }
        .plots { display: flex; flex-wrap: wrap; gap: 12px; }
        .plots figure { margin: 0; border: 1px solid #d0d7de; padding: 6px; }
        .plots img { display: block; max-width: 480px; height: auto; }
        figcaption { font-size: 0.85em; color: #59636e; margin-top: 4px; }
        .row { margin: 18px 0; }
        .row h3 { font-size: 1em; margin: 0 0 6px 0; font-weight: 600; }
        .row h3 .seed { color: #59636e; font-weight: normal; }
        .pics { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
        .pic { width: PICWpx; text-align: center; }
        .pic .label { font-size: 0.85em; font-weight: 600; margin-bottom: 2px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
        .pic img { width: PICWpx; height: auto; image-rendering: pixelated; display: block; border: 1px solid #d0d7de; background: #eee; }
        .pic .empty { width: PICWpx; height: PICWpx; border: 1px dashed #d0d7de; color: #8c959f; display: flex; align-items: center; justify-content: center; }
        .pic .diff { margin-top: 4px; }
        .pic .vals { display: grid; grid-template-columns: minmax(0, 1fr) auto; column-gap: 4px; font-size: 0.75em; color: #59636e; text-align: left; margin-top: 2px; font-variant-numeric: tabular-nums; }
        .pic .vals .k { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
        .pic .vals .v { text-align: right; color: #1f2328; }
        .sep { width: 1px; align-self: stretch; background: #d0d7de; }
        details { margin: 8px 0; }
        dl.notes dt { font-weight: 600; margin-top: 8px; }
        dl.notes dd { margin: 2px 0 0 16px; }
        pre { background: #f6f8fa; padding: 8px; overflow-x: auto; white-space: pre-wrap; margin: 0; }
        """;

    public static string Build(EvaluationResult r, IReadOnlyList<PlotFile> plots)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
          .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
          .Append("<title>").Append(E(r.Title)).Append("</title>\n<style>\n")
          .Append(Css.Replace("PICW", PictureWidth.ToString(CultureInfo.InvariantCulture))).Append("\n</style>\n</head>\n<body>\n");

        sb.Append("<h1>").Append(E(r.Title)).Append("</h1>\n<p class=\"meta\">");
        if (r.BaseModel.Length > 0) sb.Append("Base model <code>").Append(E(r.BaseModel)).Append("</code> · ");
        sb.Append("methods: ").Append(E(string.Join(", ", r.AllMethods()))).Append(" · ")
          .Append(r.Prompts.Count).Append(" prompt(s) × ").Append(r.Seeds.Count).Append(" seed(s)");
        if (r.TargetMetric is not null) sb.Append(" · target: <code>").Append(E(r.TargetMetric)).Append("</code>");
        sb.Append("</p>\n");

        var headline = ReportWriter.HeadlineColumns(r);
        AppendVerdictAndSummary(sb, r, headline);
        bool onDemand = headline.Count > 0;
        if (onDemand) sb.Append("<details>\n<summary>Every figure of every method</summary>\n");
        AppendMetrics(sb, r);
        if (onDemand) sb.Append("</details>\n");
        AppendGlossary(sb, r);
        AppendMonitor(sb, r);
        AppendPlots(sb, plots);
        AppendPictures(sb, r);
        AppendImageMetrics(sb, r);
        AppendNotes(sb, r);
        sb.Append("</body>\n</html>\n");
        return sb.ToString();
    }

    /// <summary>The verdict (markdown paragraphs shown as plain text, `code` kept) and the narrow table of the headline figures.</summary>
    static void AppendVerdictAndSummary(StringBuilder sb, EvaluationResult r, List<string> columns)
    {
        if (r.Verdict.Length > 0)
        {
            sb.Append("<blockquote class=\"verdict\">\n");
            foreach (var para in r.Verdict.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
                sb.Append("<p>").Append(InlineMarkdown(para)).Append("</p>\n");
            sb.Append("</blockquote>\n");
        }
        if (columns.Count == 0) return;
        sb.Append("<h2>Summary</h2>\n<table class=\"metrics\">\n<tr><th>method</th>");
        foreach (var c in columns) sb.Append("<th>").Append(E(c)).Append(' ').Append(FigureGlossary.Describe(c).Arrow).Append("</th>");
        sb.Append("</tr>\n");
        foreach (var s in ReportWriter.OrderedSummaries(r))
        {
            sb.Append("<tr><td>").Append(E(s.Method)).Append("</td>");
            foreach (var c in columns)
                sb.Append("<td class=\"num\">").Append(E(s.Aggregates.TryGetValue(c, out var v) ? ReportWriter.FormatHeadline(c, v) : ReportWriter.Missing)).Append("</td>");
            sb.Append("</tr>\n");
        }
        sb.Append("</table>\n");
    }

    /// <summary>HTML-escaped text with markdown's **bold** and `code` spans rendered; nothing else is interpreted.</summary>
    internal static string InlineMarkdown(string text)
    {
        var escaped = E(text);
        escaped = System.Text.RegularExpressions.Regex.Replace(escaped, @"\*\*(.+?)\*\*", "<b>$1</b>");
        return System.Text.RegularExpressions.Regex.Replace(escaped, "`([^`]+)`", "<code>$1</code>");
    }

    static void AppendMetrics(StringBuilder sb, EvaluationResult r)
    {
        var summaries = ReportWriter.OrderedSummaries(r);
        if (summaries.Count == 0) return;
        var columns = ReportWriter.MetricColumns(r);
        sb.Append("<h2>Metrics</h2>\n<table class=\"metrics\">\n<tr><th>method</th><th>images</th>");
        foreach (var c in columns) sb.Append("<th").Append(TargetClass(r, c)).Append('>').Append(E(c)).Append("</th>");
        sb.Append("</tr>\n");
        foreach (var s in summaries)
        {
            sb.Append("<tr><td>").Append(E(s.Method)).Append("</td><td class=\"num\">").Append(s.Images).Append("</td>");
            foreach (var c in columns)
            {
                sb.Append("<td class=\"num").Append(c == r.TargetMetric ? " target" : "").Append('"');
                if (s.Counts.TryGetValue(c, out var n) && n != s.Images) sb.Append(" title=\"over ").Append(n).Append(" image(s)\"");
                sb.Append('>').Append(E(s.Aggregates.TryGetValue(c, out var v) ? ReportWriter.Format(v) : ReportWriter.Missing)).Append("</td>");
            }
            sb.Append("</tr>\n");
        }
        sb.Append("</table>\n<p class=\"note\">").Append(E(ReportWriter.AggregationNote(r))).Append("</p>\n");

        var deltas = ReportWriter.Deltas(r);
        if (deltas is null) return;
        var (dColumns, rows) = deltas.Value;
        sb.Append("<h3>Change vs ").Append(E(r.BaseMethod)).Append("</h3>\n<table class=\"metrics\">\n<tr><th>method</th>");
        foreach (var c in dColumns) sb.Append("<th").Append(TargetClass(r, c)).Append(">Δ ").Append(E(c)).Append(' ').Append(FigureGlossary.Describe(c).Arrow).Append("</th>");
        sb.Append("</tr>\n");
        foreach (var (method, values) in rows)
        {
            sb.Append("<tr><td>").Append(E(method)).Append("</td>");
            foreach (var c in dColumns)
            {
                if (!values.TryGetValue(c, out var v)) { sb.Append("<td class=\"num\">").Append(ReportWriter.Missing).Append("</td>"); continue; }
                sb.Append("<td class=\"num").Append(c == r.TargetMetric ? " target" : "").Append(GoodnessClass(c, v)).Append("\">")
                  .Append(E(ReportWriter.FormatSigned(v))).Append("</td>");
            }
            sb.Append("</tr>\n");
        }
        sb.Append("</table>\n<p class=\"note\">Green: better than ").Append(E(r.BaseMethod)).Append(", red: worse, by each figure's direction in the glossary (↑ higher is better, ↓ lower is better); uncoloured: no change or a figure with no better side.</p>\n");
    }

    /// <summary>The CSS class of a change: "better" or "worse" by the figure's direction in the glossary, never by the sign alone.</summary>
    internal static string GoodnessClass(string figure, double delta) => FigureGlossary.Goodness(figure, delta) switch
    {
        > 0 => " better",
        < 0 => " worse",
        _ => "",
    };

    static void AppendGlossary(StringBuilder sb, EvaluationResult r)
    {
        var figures = ReportWriter.GlossaryFigures(r);
        if (figures.Count == 0) return;
        sb.Append("<h2 id=\"glossary\">Glossary</h2>\n").Append(FigureGlossary.Html(figures))
          .Append("<p class=\"note\">").Append(E(FigureGlossary.Legend)).Append("</p>\n");
    }

    static void AppendMonitor(StringBuilder sb, EvaluationResult r)
    {
        var monitored = r.Monitored();
        if (monitored.Count == 0) return;
        sb.Append("<h2 id=\"monitor\">Reward-hacking monitor</h2>\n<ul>\n");
        foreach (var (method, monitor) in monitored)
            sb.Append("<li><b>").Append(E(method)).Append("</b>: ").Append(E(monitor.Describe())).Append("</li>\n");
        sb.Append("</ul>\n");
    }

    static void AppendPlots(StringBuilder sb, IReadOnlyList<PlotFile> plots)
    {
        foreach (var (kind, heading) in new[] { ("curve", "Training curves"), ("monitor", "Reward-hacking monitor"), ("bar", "Metrics per method") })
        {
            var mine = plots.Where(p => p.Kind == kind).ToList();
            if (mine.Count == 0) continue;
            sb.Append("<h2>").Append(heading).Append("</h2>\n<div class=\"plots\">\n");
            foreach (var p in mine)
                sb.Append("<figure><img src=\"").Append(Src(p.RelativePath)).Append("\" alt=\"").Append(E(p.Caption))
                  .Append("\"><figcaption>").Append(E(p.Caption)).Append("</figcaption></figure>\n");
            sb.Append("</div>\n");
        }
    }

    static void AppendPictures(StringBuilder sb, EvaluationResult r)
    {
        if (r.Rows.Count == 0) return;
        var methods = ReportWriter.PictureMethods(r);
        var captions = CaptionMetrics(r);
        var records = r.Images.GroupBy(i => (i.PromptIndex, i.Seed, i.Method)).ToDictionary(g => g.Key, g => g.First());
        sb.Append("<h2 id=\"pictures\">Pictures</h2>\n<p class=\"note\">Each row: the base model's image, the heatmap over it, the mask (white = may change), ")
          .Append("then each fine-tuned model's image from the same seed with its difference to the base image under it ")
          .Append("(largest channel difference ×4, black = unchanged).");
        if (r.PictureRowRule.Length > 0) sb.Append(' ').Append(E(r.PictureRowRule));
        sb.Append("</p>\n");
        foreach (var row in r.Rows)
        {
            sb.Append("<div class=\"row\"><h3>#").Append(row.PromptIndex).Append(": ").Append(E(row.Prompt))
              .Append(" <span class=\"seed\">seed ").Append(row.Seed.ToString(CultureInfo.InvariantCulture)).Append("</span></h3>\n<div class=\"pics\">\n");
            Picture(sb, r.BaseMethod, row.BaseImage, null, records.GetValueOrDefault((row.PromptIndex, row.Seed, r.BaseMethod)), captions);
            Picture(sb, "heatmap", row.HeatmapOverlay, null, null, captions);
            Picture(sb, "mask", row.Mask, null, null, captions);
            if (methods.Count > 0) sb.Append("<div class=\"sep\"></div>\n");
            foreach (var m in methods)
                Picture(sb, m, row.MethodImages.GetValueOrDefault(m), row.DiffMaps.GetValueOrDefault(m),
                        records.GetValueOrDefault((row.PromptIndex, row.Seed, m)), captions);
            sb.Append("</div></div>\n");
        }
    }

    static void Picture(StringBuilder sb, string label, string? path, string? diff, ImageRecord? record, List<string> captions)
    {
        sb.Append("<div class=\"pic\"><div class=\"label\" title=\"").Append(E(label)).Append("\">").Append(E(label)).Append("</div>");
        if (string.IsNullOrEmpty(path)) sb.Append("<div class=\"empty\">none</div>");
        else sb.Append("<img src=\"").Append(Src(path)).Append("\" alt=\"").Append(E(label)).Append("\">");
        if (!string.IsNullOrEmpty(diff))
            sb.Append("<img class=\"diff\" src=\"").Append(Src(diff)).Append("\" alt=\"difference ").Append(E(label)).Append("\" title=\"difference to base\">");
        if (record is not null)
        {
            var cells = captions.Where(record.Metrics.ContainsKey)
                .Select(c => $"<span class=\"k\" title=\"{E(c)}\">{E(ShortName(c))}</span><span class=\"v\">{E(ReportWriter.Format(record.Metrics[c]))}</span>")
                .ToList();
            if (cells.Count > 0) sb.Append("<div class=\"vals\">").Append(string.Concat(cells)).Append("</div>");
        }
        sb.Append("</div>\n");
    }

    // The few figures worth reading under a picture: the target, then how much was preserved and where it changed.
    static List<string> CaptionMetrics(EvaluationResult r)
    {
        var list = new List<string>();
        if (r.TargetMetric is not null) list.Add(r.TargetMetric);
        list.AddRange(new[] { MetricNames.PsnrOutside, MetricNames.ChangedShareInside });
        return list;
    }

    static string ShortName(string metric) => metric switch
    {
        MetricNames.PsnrOutside => "PSNR out",
        MetricNames.ChangedShareInside => "change in mask",
        _ => metric,
    };

    static void AppendImageMetrics(StringBuilder sb, EvaluationResult r)
    {
        if (r.Images.Count == 0) return;
        var columns = ReportWriter.ImageMetricColumns(r);
        sb.Append("<h2>Per-image metrics</h2>\n<details><summary>").Append(r.Images.Count).Append(" images</summary>\n<table class=\"metrics\">\n")
          .Append("<tr><th>prompt</th><th>seed</th><th>method</th><th>image</th>");
        foreach (var c in columns) sb.Append("<th").Append(TargetClass(r, c)).Append('>').Append(E(c)).Append("</th>");
        sb.Append("</tr>\n");
        foreach (var i in r.Images)
        {
            sb.Append("<tr><td class=\"num\">").Append(i.PromptIndex).Append("</td><td class=\"num\">").Append(i.Seed.ToString(CultureInfo.InvariantCulture))
              .Append("</td><td>").Append(E(i.Method)).Append("</td><td>");
            if (i.ImagePath.Length > 0) sb.Append("<a href=\"").Append(Src(i.ImagePath)).Append("\">").Append(E(i.ImagePath)).Append("</a>");
            sb.Append("</td>");
            foreach (var c in columns)
                sb.Append("<td class=\"num\">").Append(E(i.Metrics.TryGetValue(c, out var v) ? ReportWriter.Format(v) : ReportWriter.Missing)).Append("</td>");
            sb.Append("</tr>\n");
        }
        sb.Append("</table>\n</details>\n");
    }

    static void AppendNotes(StringBuilder sb, EvaluationResult r)
    {
        if (r.Notes.Count == 0) return;
        sb.Append("<h2>Notes</h2>\n<dl class=\"notes\">\n");
        foreach (var (k, v) in r.Notes)
        {
            sb.Append("<dt>").Append(E(k)).Append("</dt><dd>");
            if (v.Contains('\n') || v.Length > 100) sb.Append("<pre>").Append(E(v)).Append("</pre>");
            else sb.Append("<code>").Append(E(v)).Append("</code>");
            sb.Append("</dd>\n");
        }
        sb.Append("</dl>\n");
    }

    static string TargetClass(EvaluationResult r, string c) => c == r.TargetMetric ? " class=\"target\"" : "";

    static string Src(string relative) => E(ReportWriter.UrlPath(relative));

    static string E(string s) => WebUtility.HtmlEncode(s);
}
