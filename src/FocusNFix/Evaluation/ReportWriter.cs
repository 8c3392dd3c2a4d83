using System.Globalization;
using System.Text;
using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FocusNFix.Evaluation;

/// <summary>
/// Writes an evaluation's report folder: report.json (the <see cref="EvaluationResult"/>), report.md (GitHub
/// markdown), report.html (one file, CSS inline, no scripts, no network) and plots/*.png (ScottPlot). Pictures are
/// referenced by paths relative to the folder, never embedded, so the folder can be zipped or moved and report.html
/// still opens from disk.
/// </summary>
public static class ReportWriter
{
    public const string JsonFile = "report.json", MarkdownFile = "report.md", HtmlFile = "report.html", PlotFolder = "plots";

    /// <summary>
    /// Writes the report into <paramref name="outDir"/> (created if needed), every file atomically. Works on a copy
    /// of <paramref name="r"/>: summaries are computed from the images when it has none, and picture paths given as
    /// absolute paths are rewritten relative to <paramref name="outDir"/>. Returns the copy that was written.
    /// </summary>
    public static EvaluationResult Write(EvaluationResult r, string outDir)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (string.IsNullOrWhiteSpace(outDir)) throw new InvalidInputException("report folder: expected a path, got an empty string");
        var copy = r.Clone();
        if (copy.Summaries.Count == 0 && copy.Images.Count > 0) copy.ComputeSummaries();
        RelativisePaths(copy, outDir);
        Directory.CreateDirectory(outDir);

        var plots = ReportPlots.Write(copy, Path.Combine(outDir, PlotFolder), PlotFolder);
        copy.Save(Path.Combine(outDir, JsonFile));
        AtomicFile.WriteAllText(Path.Combine(outDir, MarkdownFile), Markdown(copy, plots));
        AtomicFile.WriteAllText(Path.Combine(outDir, HtmlFile), ReportHtml.Build(copy, plots));
        return copy;
    }

    /// <summary>
    /// The aggregate metrics as a GitHub markdown table: one row per method (in <see cref="EvaluationResult.Methods"/>
    /// order), columns "method", "images", then the metrics (target first). Missing values show as "—".
    /// </summary>
    public static string MarkdownTable(EvaluationResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var summaries = OrderedSummaries(r);
        var columns = MetricColumns(r);
        var sb = new StringBuilder();
        sb.Append("| method | images |");
        foreach (var c in columns) sb.Append(' ').Append(MdCell(c == r.TargetMetric ? c + " (target)" : c)).Append(" |");
        sb.Append('\n').Append("| --- | ---: |");
        foreach (var _ in columns) sb.Append(" ---: |");
        sb.Append('\n');
        foreach (var s in summaries)
        {
            sb.Append("| ").Append(MdCell(s.Method)).Append(" | ").Append(s.Images.ToString(CultureInfo.InvariantCulture)).Append(" |");
            foreach (var c in columns) sb.Append(' ').Append(s.Aggregates.TryGetValue(c, out var v) ? Format(v) : Missing).Append(" |");
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// Each method's aggregates minus the base method's, for the metrics where the base value is finite; null when
    /// there is no base summary or no other method.
    /// </summary>
    public static string? MarkdownDeltaTable(EvaluationResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var d = Deltas(r);
        if (d is null) return null;
        var (columns, rows) = d.Value;
        var sb = new StringBuilder();
        sb.Append("| method |");
        foreach (var c in columns) sb.Append(' ').Append(MdCell("Δ " + c + " " + FigureGlossary.Describe(c).Arrow)).Append(" |");
        sb.Append('\n').Append("| --- |");
        foreach (var _ in columns) sb.Append(" ---: |");
        sb.Append('\n');
        foreach (var (method, values) in rows)
        {
            sb.Append("| ").Append(MdCell(method)).Append(" |");
            foreach (var c in columns) sb.Append(' ').Append(values.TryGetValue(c, out var v) ? FormatSigned(v) : Missing).Append(" |");
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// The headline figures (<see cref="EvaluationResult.HeadlineMetrics"/>) as a narrow table, one row per method, each
    /// header with its better direction; null when none is set or none has a value.
    /// </summary>
    public static string? MarkdownHeadlineTable(EvaluationResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var columns = HeadlineColumns(r);
        if (columns.Count == 0) return null;
        var sb = new StringBuilder("| method |");
        foreach (var c in columns) sb.Append(' ').Append(MdCell(c + " " + FigureGlossary.Describe(c).Arrow)).Append(" |");
        sb.Append("\n| --- |");
        foreach (var _ in columns) sb.Append(" ---: |");
        sb.Append('\n');
        foreach (var s in OrderedSummaries(r))
        {
            sb.Append("| ").Append(MdCell(s.Method)).Append(" |");
            foreach (var c in columns) sb.Append(' ').Append(s.Aggregates.TryGetValue(c, out var v) ? FormatHeadline(c, v) : Missing).Append(" |");
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>A figure as the summary table and a verdict show it: rates in %, PSNR in dB, shares to 3 decimals.</summary>
    public static string FormatHeadline(string figure, double v)
    {
        if (!double.IsFinite(v)) return Format(v);
        return FigureGlossary.Describe(figure).Unit switch
        {
            "rate" => (100 * v).ToString("0.0", CultureInfo.InvariantCulture) + "%",
            "dB" => v.ToString("0.0", CultureInfo.InvariantCulture) + " dB",
            "share" => v.ToString("0.000", CultureInfo.InvariantCulture),
            _ => Format(v),
        };
    }

    internal static List<string> HeadlineColumns(EvaluationResult r) =>
        r.HeadlineMetrics.Distinct().Where(m => r.Summaries.Any(s => s.Aggregates.ContainsKey(m))).ToList();

    static string Markdown(EvaluationResult r, IReadOnlyList<PlotFile> plots)
    {
        var sb = new StringBuilder();
        sb.Append("# ").Append(r.Title).Append("\n\n");
        if (r.BaseModel.Length > 0) sb.Append("Base model: `").Append(r.BaseModel).Append("`  \n");
        sb.Append("Methods: ").Append(string.Join(", ", r.AllMethods())).Append("  \n");
        sb.Append(r.Prompts.Count).Append(" prompt(s) × ").Append(r.Seeds.Count).Append(" seed(s)");
        if (r.TargetMetric is not null) sb.Append("; target metric: `").Append(r.TargetMetric).Append('`');
        if (r.Verdict.Length > 0)
            sb.Append("\n\n").Append(string.Join('\n', r.Verdict.Split('\n').Select(line => line.Length > 0 ? "> " + line : ">")));
        if (MarkdownHeadlineTable(r) is { } headline)
            sb.Append("\n\n## Summary\n\n").Append(headline).Append("\nEvery figure of every method: the next section.");
        sb.Append("\n\n## Metrics\n\n").Append(MarkdownTable(r)).Append('\n').Append(AggregationNote(r)).Append("\n\n");
        var delta = MarkdownDeltaTable(r);
        if (delta is not null)
            sb.Append("### Change vs ").Append(r.BaseMethod).Append("\n\n").Append(delta).Append('\n')
              .Append("Each header's arrow says which direction is better (see the glossary).\n\n");
        var glossary = GlossaryFigures(r);
        if (glossary.Count > 0)
            sb.Append("## Glossary\n\n").Append(FigureGlossary.Markdown(glossary)).Append('\n').Append(FigureGlossary.Legend).Append("\n\n");

        var monitored = r.Monitored();
        if (monitored.Count > 0)
        {
            sb.Append("## Reward-hacking monitor\n\n");
            foreach (var (method, monitor) in monitored) sb.Append("- ").Append(MdCell(method)).Append(": ").Append(MdCell(monitor.Describe())).Append('\n');
            sb.Append('\n');
        }

        if (plots.Count > 0)
        {
            sb.Append("## Plots\n\n");
            foreach (var p in plots) sb.Append("![").Append(p.Caption).Append("](").Append(UrlPath(p.RelativePath)).Append(")\n");
            sb.Append('\n');
        }

        if (r.Rows.Count > 0)
        {
            sb.Append("## Pictures\n\n");
            if (r.PictureRowRule.Length > 0) sb.Append(r.PictureRowRule).Append("\n\n");
            var methods = PictureMethods(r);
            sb.Append("| prompt | seed | base | heatmap | mask |");
            foreach (var m in methods) sb.Append(' ').Append(MdCell(m)).Append(" |");
            foreach (var m in methods) sb.Append(' ').Append(MdCell("diff " + m)).Append(" |");
            sb.Append('\n').Append("| --- | ---: | --- | --- | --- |");
            for (int i = 0; i < 2 * methods.Count; i++) sb.Append(" --- |");
            sb.Append('\n');
            foreach (var row in r.Rows)
            {
                sb.Append("| ").Append(MdCell(row.Prompt)).Append(" | ").Append(row.Seed.ToString(CultureInfo.InvariantCulture)).Append(" |");
                foreach (var p in new[] { row.BaseImage, row.HeatmapOverlay, row.Mask }) sb.Append(' ').Append(MdImage(p)).Append(" |");
                foreach (var m in methods) sb.Append(' ').Append(MdImage(row.MethodImages.GetValueOrDefault(m))).Append(" |");
                foreach (var m in methods) sb.Append(' ').Append(MdImage(row.DiffMaps.GetValueOrDefault(m))).Append(" |");
                sb.Append('\n');
            }
            sb.Append('\n');
        }

        if (r.Images.Count > 0)
        {
            var columns = ImageMetricColumns(r);
            sb.Append("## Per-image metrics\n\n<details><summary>").Append(r.Images.Count).Append(" images</summary>\n\n");
            sb.Append("| prompt | seed | method |");
            foreach (var c in columns) sb.Append(' ').Append(MdCell(c)).Append(" |");
            sb.Append('\n').Append("| ---: | ---: | --- |");
            foreach (var _ in columns) sb.Append(" ---: |");
            sb.Append('\n');
            foreach (var i in r.Images)
            {
                sb.Append("| ").Append(i.PromptIndex).Append(" | ").Append(i.Seed.ToString(CultureInfo.InvariantCulture)).Append(" | ").Append(MdCell(i.Method)).Append(" |");
                foreach (var c in columns) sb.Append(' ').Append(i.Metrics.TryGetValue(c, out var v) ? Format(v) : Missing).Append(" |");
                sb.Append('\n');
            }
            sb.Append("\n</details>\n\n");
        }

        if (r.Notes.Count > 0)
        {
            sb.Append("## Notes\n\n");
            foreach (var (k, v) in r.Notes)
            {
                sb.Append("- **").Append(MdCell(k)).Append("**: ");
                if (v.Contains('\n')) sb.Append("\n\n```\n").Append(v.TrimEnd()).Append("\n```\n");
                else sb.Append('`').Append(v.Replace("`", "'")).Append("`\n");
            }
        }
        return sb.ToString();
    }

    /// <summary>
    /// A heatmap shown over its image: the image at half saturation, blended towards a red→yellow ramp with weight
    /// 0.7·h, where h is the heatmap min-max normalised per image (a constant heatmap shows nothing) and bilinearly
    /// resized to the image. image [3,H,W] or [B,3,H,W] in [0,1]; heatmap [h,w], [1,h,w], [B,h,w] or [B,1,h,w].
    /// Returns a new float32 tensor of the image's shape in [0,1] on the image's device, without gradient.
    /// </summary>
    public static Tensor HeatmapOverlay(Tensor image, Tensor heatmap)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(heatmap);
        bool single = image.dim() == 3;
        if (!(single || image.dim() == 4) || image.shape[^3] != 3 || image.numel() == 0)
            throw new ArgumentException($"image: expected [3,H,W] or [B,3,H,W], got {Shape(image)}");
        long b = single ? 1 : image.shape[0], h = image.shape[^2], w = image.shape[^1];
        long heatBatch = heatmap.dim() switch { 2 => 1, 3 => heatmap.shape[0], 4 when heatmap.shape[1] == 1 => heatmap.shape[0], _ => -1 };
        if (heatBatch < 0 || (heatBatch != b && heatBatch != 1) || heatmap.numel() == 0)
            throw new ArgumentException($"heatmap: expected [h,w], [1,h,w] or [{b},1,h,w] for image {Shape(image)}, got {Shape(heatmap)}");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var img = image.detach().to(float32).reshape(b, 3, h, w).clamp(0, 1);
        var heat = heatmap.detach().to(float32, image.device).reshape(heatBatch, 1, heatmap.shape[^2], heatmap.shape[^1]).nan_to_num(0);
        var flat = heat.reshape(heatBatch, -1);
        var lo = flat.amin(new long[] { 1 }, keepdim: true);
        var range = flat.amax(new long[] { 1 }, keepdim: true) - lo;
        flat = where(range.gt(0), (flat - lo) / range.clamp_min(1e-12), zeros_like(flat));
        heat = flat.reshape(heat.shape);
        if (heat.shape[2] != h || heat.shape[3] != w)
            heat = F.interpolate(heat, new[] { h, w }, mode: InterpolationMode.Bilinear, align_corners: false).clamp(0, 1);
        heat = heat.expand(b, 1, h, w);

        var grey = (img[.., 0..1] * 0.299f + img[.., 1..2] * 0.587f + img[.., 2..3] * 0.114f).expand(b, 3, h, w);
        var dimmed = img * 0.5f + grey * 0.5f;
        var colour = cat(new[] { ones_like(heat), (heat * 2 - 1).clamp(0, 1), zeros_like(heat) }, 1);
        var alpha = heat * 0.7f;
        var outImg = (dimmed * (1 - alpha) + colour * alpha).clamp(0, 1);
        return (single ? outImg[0] : outImg).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Greyscale map of where two images differ: the largest per-channel |a - b| times <paramref name="gain"/>
    /// (default 4, so a change of 1/4 of the range is white), clamped to [0,1] and repeated on 3 channels (black = no
    /// change). a, b: the same [3,H,W] or [B,3,H,W]. Returns a new float32 tensor on a's device, without gradient.
    /// </summary>
    public static Tensor DifferenceMap(Tensor a, Tensor b, double gain = 4)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!(a.dim() == 3 || a.dim() == 4) || a.shape[^3] != 3 || !a.shape.SequenceEqual(b.shape) || a.numel() == 0)
            throw new ArgumentException($"images {Shape(a)} and {Shape(b)}: expected the same [3,H,W] or [B,3,H,W] shape");
        if (!(gain > 0) || double.IsInfinity(gain)) throw new ArgumentException($"gain = {gain}: expected a finite number > 0");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var d = (a.detach().to(float32) - b.detach().to(float32, a.device)).abs();
        var grey = d.amax(new long[] { -3 }, keepdim: true).mul((float)gain).clamp(0, 1);
        return grey.expand(d.shape).contiguous().MoveToOuterDisposeScope();
    }

    // ---- shared by the markdown, HTML and plot writers ----

    internal const string Missing = "—";

    /// <summary>Numbers as the tables show them: up to 4 decimals (scientific below 0.001), NaN, +Inf, -Inf.</summary>
    internal static string Format(double v)
    {
        if (double.IsNaN(v)) return "NaN";
        if (double.IsPositiveInfinity(v)) return "+Inf";
        if (double.IsNegativeInfinity(v)) return "-Inf";
        if (v != 0 && Math.Abs(v) < 1e-3) return v.ToString("0.###E+0", CultureInfo.InvariantCulture);
        var s = v.ToString("0.####", CultureInfo.InvariantCulture);
        return s == "-0" ? "0" : s;
    }

    internal static string FormatSigned(double v) => double.IsFinite(v) && v > 0 ? "+" + Format(v) : Format(v);

    /// <summary>Every figure the report shows (aggregates, then training-curve values), for the glossary.</summary>
    internal static List<string> GlossaryFigures(EvaluationResult r) =>
        MetricColumns(r).Concat(r.Curves.SelectMany(c => c.Points).SelectMany(p => p.Values.Keys))
            .Concat(r.MonitorKeys()).Distinct().ToList();

    internal static List<MethodSummary> OrderedSummaries(EvaluationResult r)
    {
        var byMethod = r.Summaries.GroupBy(s => s.Method).ToDictionary(g => g.Key, g => g.First());
        return r.AllMethods().Where(byMethod.ContainsKey).Select(m => byMethod[m]).ToList();
    }

    /// <summary>Aggregate metric names: the target first, the preservation metrics last, others as first seen.</summary>
    internal static List<string> MetricColumns(EvaluationResult r) =>
        OrderColumns(r, OrderedSummaries(r).SelectMany(s => s.Aggregates.Keys));

    internal static List<string> ImageMetricColumns(EvaluationResult r) => OrderColumns(r, r.Images.SelectMany(i => i.Metrics.Keys));

    static List<string> OrderColumns(EvaluationResult r, IEnumerable<string> keys)
    {
        var seen = keys.Distinct().ToList();
        var preservation = MetricNames.Preservation.Where(seen.Contains).ToList();
        var others = seen.Where(k => !preservation.Contains(k) && k != r.TargetMetric).ToList();
        var result = new List<string>();
        if (r.TargetMetric is not null && seen.Contains(r.TargetMetric)) result.Add(r.TargetMetric);
        result.AddRange(others);
        result.AddRange(preservation);
        return result;
    }

    internal static (List<string> Columns, List<(string Method, Dictionary<string, double> Values)> Rows)? Deltas(EvaluationResult r)
    {
        var summaries = OrderedSummaries(r);
        var baseSummary = summaries.FirstOrDefault(s => s.Method == r.BaseMethod);
        var others = summaries.Where(s => s.Method != r.BaseMethod).ToList();
        if (baseSummary is null || others.Count == 0) return null;
        var columns = MetricColumns(r).Where(c => baseSummary.Aggregates.TryGetValue(c, out var v) && double.IsFinite(v)).ToList();
        if (columns.Count == 0) return null;
        var rows = others.Select(s => (s.Method, columns.Where(s.Aggregates.ContainsKey)
            .ToDictionary(c => c, c => s.Aggregates[c] - baseSummary.Aggregates[c]))).ToList();
        return (columns, rows);
    }

    /// <summary>Methods that get a picture column: every method but the base one (its image is the "base" column).</summary>
    internal static List<string> PictureMethods(EvaluationResult r)
    {
        var inRows = r.Rows.SelectMany(row => row.MethodImages.Keys.Concat(row.DiffMaps.Keys)).ToHashSet();
        return r.AllMethods().Where(m => m != r.BaseMethod && inRows.Contains(m)).ToList();
    }

    internal static string AggregationNote(EvaluationResult r)
    {
        var medians = MetricColumns(r).Where(c => MethodSummary.AggregationFor(c) == Aggregation.Median).ToList();
        var text = "Aggregates are means over the images";
        if (medians.Count > 0) text += ", except medians for " + string.Join(", ", medians) + " (PSNR of an unchanged image is +Inf)";
        return text + "; NaN values (metric undefined for an image) are left out.";
    }

    /// <summary>A relative path as a URL path: '/' separators, each segment percent-encoded.</summary>
    internal static string UrlPath(string relative) =>
        string.Join('/', relative.Replace('\\', '/').Split('/').Select(Uri.EscapeDataString));

    static string MdCell(string s) => s.Replace("\\", "\\\\").Replace("|", "\\|").Replace("\r", " ").Replace("\n", " ");

    static string MdImage(string? path) =>
        string.IsNullOrEmpty(path) ? Missing : $"<img src=\"{UrlPath(path)}\" width=\"96\" alt=\"\">";

    static void RelativisePaths(EvaluationResult r, string outDir)
    {
        var root = Path.GetFullPath(outDir);
        string? Rel(string? p)
        {
            if (string.IsNullOrEmpty(p)) return p;
            var rel = Path.IsPathRooted(p) ? Path.GetRelativePath(root, p) : p;
            return rel.Replace('\\', '/');
        }
        foreach (var i in r.Images) i.ImagePath = Rel(i.ImagePath) ?? "";
        foreach (var row in r.Rows)
        {
            row.BaseImage = Rel(row.BaseImage);
            row.HeatmapOverlay = Rel(row.HeatmapOverlay);
            row.Mask = Rel(row.Mask);
            row.MethodImages = row.MethodImages.ToDictionary(kv => kv.Key, kv => Rel(kv.Value)!);
            row.DiffMaps = row.DiffMaps.ToDictionary(kv => kv.Key, kv => Rel(kv.Value)!);
        }
    }

    static string Shape(Tensor t) => "[" + string.Join(",", t.shape) + "]";
}
