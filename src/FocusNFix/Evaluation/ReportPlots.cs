using System.Text;
using FocusNFix.IO;
using ScottPlot;

namespace FocusNFix.Evaluation;

/// <summary>A plot written into the report folder: path relative to the folder, caption, and "curve", "monitor" or "bar".</summary>
public sealed record PlotFile(string RelativePath, string Caption, string Kind);

/// <summary>
/// The report's plots, rendered headless with ScottPlot 5 (SkiaSharp): one line plot per training-curve value
/// (each method a line against the step, smoothed by <see cref="CurveSmoothing"/> with its raw values faint behind it),
/// one per value of the reward-hacking monitor (its evaluations, the first flag and the kept checkpoint marked), and
/// one bar chart per aggregate metric (one bar per method).
/// </summary>
public static class ReportPlots
{
    public const int CurveWidth = 640, CurveHeight = 400, BarWidth = 480, BarHeight = 360;

    /// <summary>Writes the PNGs into <paramref name="folder"/> atomically; returns them in display order.</summary>
    public static List<PlotFile> Write(EvaluationResult r, string folder, string relativeFolder)
    {
        var plots = new List<PlotFile>();
        var methods = r.AllMethods();
        Color ColourOf(string method) => Palette.GetColor(Math.Max(0, methods.IndexOf(method)));
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        string FileFor(string prefix, string key)
        {
            var stem = prefix + "_" + Slug(key);
            var name = stem + ".png";
            for (int i = 2; !used.Add(name); i++) name = $"{stem}_{i}.png";
            return name;
        }

        foreach (var key in CurveKeys(r))
        {
            var lines = r.Curves
                .Select(c => (c.Method, Points: c.Points.Where(p => p.Values.TryGetValue(key, out var v) && double.IsFinite(v))
                                                      .OrderBy(p => p.Step).ToList()))
                .Where(l => l.Points.Count > 0).ToList();
            if (lines.Count == 0) continue;
            var name = FileFor("curve", key);
            // One span for every line of a plot, so the methods are smoothed alike.
            int span = CurveSmoothing.SpanFor(lines.Max(l => l.Points.Count));
            var bytes = CurvePng(key, span, lines.Select(l => (l.Method, ColourOf(l.Method), l.Points.Select(p => (double)p.Step).ToArray(),
                                                         l.Points.Select(p => p.Values[key]).ToArray())).ToList());
            AtomicFile.WriteAllBytes(Path.Combine(folder, name), bytes);
            plots.Add(new PlotFile(relativeFolder + "/" + name, $"{key} {FigureGlossary.Describe(key).Arrow} against training step; {CurveSmoothing.Description(span)}", "curve"));
        }

        var monitored = r.Monitored();
        foreach (var key in r.MonitorKeys())
        {
            var lines = monitored
                .Select(c => (c.Method, c.Monitor, Points: c.Monitor.Evaluations.Where(p => p.Values.TryGetValue(key, out var v) && double.IsFinite(v)).OrderBy(p => p.Step).ToList()))
                .Where(l => l.Points.Count > 0).ToList();
            if (lines.Count == 0) continue;
            var name = FileFor("monitor", key.StartsWith("monitor_", StringComparison.Ordinal) ? key["monitor_".Length..] : key);
            AtomicFile.WriteAllBytes(Path.Combine(folder, name), MonitorPng(key, lines.Select(l => (l.Method, ColourOf(l.Method), l.Monitor,
                l.Points.Select(p => (double)p.Step).ToArray(), l.Points.Select(p => p.Values[key]).ToArray())).ToList()));
            plots.Add(new PlotFile(relativeFolder + "/" + name, $"{key} {FigureGlossary.Describe(key).Arrow} at each monitor evaluation; dashed line: the first hacking flag, ringed point: the checkpoint kept (or the best that met the guards)", "monitor"));
        }

        var summaries = ReportWriter.OrderedSummaries(r);
        foreach (var metric in ReportWriter.MetricColumns(r))
        {
            var bars = summaries.Where(s => s.Aggregates.TryGetValue(metric, out var v) && double.IsFinite(v))
                                .Select(s => (s.Method, ColourOf(s.Method), s.Aggregates[metric])).ToList();
            if (bars.Count == 0) continue;
            int omitted = summaries.Count(s => s.Aggregates.TryGetValue(metric, out var v) && !double.IsFinite(v));
            var agg = MethodSummary.AggregationFor(metric) == Aggregation.Median ? "median" : "mean";
            var caption = $"{metric} ({agg}) per method" + (omitted > 0 ? $"; {omitted} non-finite value(s) not drawn" : "");
            var name = FileFor("bar", metric);
            AtomicFile.WriteAllBytes(Path.Combine(folder, name), BarPng($"{metric} ({agg})", bars, r.TargetMetric == metric));
            plots.Add(new PlotFile(relativeFolder + "/" + name, caption, "bar"));
        }
        return plots;
    }

    static List<string> CurveKeys(EvaluationResult r) =>
        r.Curves.SelectMany(c => c.Points).SelectMany(p => p.Values.Keys).Distinct().ToList();

    static byte[] MonitorPng(string key, List<(string Method, Color Colour, MonitorTrace Trace, double[] Steps, double[] Values)> lines)
    {
        var plot = NewPlot();
        try
        {
            foreach (var (method, colour, trace, steps, values) in lines)
            {
                var line = plot.Add.ScatterLine(steps, values);
                line.LegendText = method;
                line.Color = colour;
                line.LineWidth = 2;
                line.MarkerSize = 6;
                if (trace.FlagStep is int flag)
                {
                    var v = plot.Add.VerticalLine(flag);
                    v.Color = colour;
                    v.LinePattern = LinePattern.Dashed;
                    v.LineWidth = 1.5f;
                    v.LegendText = $"{method}: first flag (step {flag})";
                }
                int? kept = trace.StoppedAt is not null ? trace.LoraStep : trace.BestUnflaggedStep;
                int at = kept is int k ? Array.IndexOf(steps, (double)k) : -1;
                if (at >= 0)
                {
                    var ring = plot.Add.Marker(steps[at], values[at]);
                    ring.Shape = MarkerShape.OpenCircle;
                    ring.Size = 16;
                    ring.Color = colour;
                    ring.LineWidth = 2;
                }
            }
            plot.Title($"monitor: {key}");
            plot.XLabel("training step");
            plot.YLabel(key);
            plot.ShowLegend(Edge.Right);
            return plot.GetImageBytes(CurveWidth, CurveHeight, ImageFormat.Png);
        }
        finally { plot.Dispose(); }
    }

    // One colour per method in every plot (the methods' display order picks it).
    static readonly IPalette Palette = new ScottPlot.Palettes.Category10();

    static Plot NewPlot() => new();

    static byte[] CurvePng(string key, int span, List<(string Method, Color Colour, double[] Steps, double[] Values)> lines)
    {
        var plot = NewPlot();
        try
        {
            foreach (var (method, colour, steps, rawValues) in lines)
            {
                var values = rawValues;
                if (span > 1 && steps.Length > 1)
                {
                    // The raw values stay visible, faint, behind the smoothed line: the noise is information too.
                    var raw = plot.Add.ScatterLine(steps, rawValues);
                    raw.Color = colour.WithAlpha(0.25);
                    raw.LineWidth = 1;
                    raw.MarkerSize = 0;
                    values = CurveSmoothing.Ema(values, span);
                }
                var line = steps.Length == 1 ? plot.Add.Scatter(steps, values) : plot.Add.ScatterLine(steps, values);
                line.LegendText = method;
                line.Color = colour;
                line.LineWidth = 2;
                line.MarkerSize = steps.Length <= 30 ? 5 : 0;
                if (steps.Length == 1) line.MarkerSize = 7;
            }
            plot.Title(span > 1 ? $"{key} (EMA over {span} points; raw faint)" : key);
            plot.XLabel("training step");
            plot.YLabel(key);
            if (lines.Count > 1) plot.ShowLegend(Edge.Right);  // outside the data area: it never hides a line
            return plot.GetImageBytes(CurveWidth, CurveHeight, ImageFormat.Png);
        }
        finally { plot.Dispose(); }
    }

    /// <summary>
    /// The value axis of a bar chart: always includes 0, where the bars start (ScottPlot's margins alone left an
    /// all-negative chart starting at its largest bar, so a bar near 0 vanished), plus 15% of the span as room for
    /// the value labels on each side that has bars. Non-finite values are ignored.
    /// </summary>
    public static (double Bottom, double Top) BarValueRange(IEnumerable<double> values)
    {
        var finite = values.Where(double.IsFinite).ToList();
        double min = Math.Min(0, finite.DefaultIfEmpty(0).Min()), max = Math.Max(0, finite.DefaultIfEmpty(0).Max());
        double span = max - min;
        if (span == 0) return (0, 1);
        return (min < 0 ? min - 0.15 * span : 0, max > 0 ? max + 0.15 * span : 0);
    }

    static byte[] BarPng(string title, List<(string Method, Color Colour, double Value)> values, bool target)
    {
        var plot = NewPlot();
        try
        {
            var bars = values.Select((v, i) => new Bar
            {
                Position = i,
                Value = v.Value,
                FillColor = v.Colour,
                Label = ReportWriter.Format(v.Value),
            }).ToArray();
            var barPlot = plot.Add.Bars(bars);
            barPlot.ValueLabelStyle.FontSize = 13;
            var ticks = values.Select((v, i) => new Tick(i, v.Method)).ToArray();
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks);
            plot.Axes.Bottom.MajorTickStyle.Length = 0;
            plot.HideGrid();
            var (bottom, top) = BarValueRange(values.Select(v => v.Value));
            plot.Axes.SetLimitsY(bottom, top);
            plot.Title(target ? title + " — target" : title);
            return plot.GetImageBytes(BarWidth, BarHeight, ImageFormat.Png);
        }
        finally { plot.Dispose(); }
    }

    /// <summary>File-name-safe form of a metric name: letters, digits, '-' and '_' kept, everything else '_'.</summary>
    internal static string Slug(string key)
    {
        var sb = new StringBuilder();
        foreach (var ch in key) sb.Append(char.IsAsciiLetterOrDigit(ch) || ch == '-' || ch == '_' ? ch : '_');
        var s = sb.ToString().Trim('_');
        return s.Length == 0 ? "metric" : s.Length > 60 ? s[..60] : s;
    }
}
