using System.Globalization;
using System.Text;
using System.Text.Json;
using FocusNFix.Evaluation;
using FocusNFix.IO;
using ScottPlot;

namespace FocusNFix.Experiments;

/// <summary>One setting's figures, each with its bootstrap 95% interval, and the fronts it is on.</summary>
public sealed class SweepPoint
{
    public string Setting { get; set; } = "";
    public string Method { get; set; } = "";
    public string Label { get; set; } = "";
    public Dictionary<string, Estimate> Figures { get; set; } = new();
    /// <summary>The trade-off figures (e.g. psnr_outside) on whose front against the defect rate this point lies, among its method's points.</summary>
    public List<string> OnFronts { get; set; } = new();
}

/// <summary>
/// What a sweep found: per setting the defect rate (oracle), preservation outside the mask, alignment (judge and
/// oracle) with bootstrap 95% intervals over prompts and training seeds, and per method the Pareto front of the
/// defect rate against each preservation or alignment figure. Written as sweep-report.json, sweep-report.md and one
/// plot per front.
/// </summary>
public sealed class SweepReport
{
    public const string JsonFile = "sweep-report.json", MarkdownFile = "sweep-report.md", FullMarkdownFile = "sweep-report-full.md", PlotFolder = "sweep-plots";

    public string Defect { get; set; } = "";
    public string Split { get; set; } = "";
    public int Prompts { get; set; }
    public int EvalSeeds { get; set; }
    public List<long> TrainSeeds { get; set; } = new();
    public int Steps { get; set; }
    public string? Concept { get; set; }
    public string Command { get; set; } = "";
    /// <summary>The defect-rate figure every front is drawn against (oracle presence of the defect, 0/1 per image).</summary>
    public string DefectFigure { get; set; } = "";
    /// <summary>The figures traded against the defect rate (higher is better), one front each.</summary>
    public List<string> TradeOffs { get; set; } = new();
    public SweepPoint Base { get; set; } = new();
    /// <summary>Per method, the setting the selection rule chose (meaningful on a val sweep; a test sweep reports, it does not choose).</summary>
    public Dictionary<string, string> Chosen { get; set; } = new();
    public SelectionRule Selection { get; set; } = new();
    public List<SweepPoint> Points { get; set; } = new();
    /// <summary>Does Focus-N-Fix's front dominate the global constraint's (the box at the top of the report).</summary>
    public SweepVerdict Verdict { get; set; } = new();
    /// <summary>The sweep's configuration (sweep.json) and the training recipe its first trained setting ran (the others differ in λ, lr and seed).</summary>
    public SweepConfig? Config { get; set; }
    public Training.TrainingConfig? Recipe { get; set; }
    /// <summary>fnf and TorchSharp versions, commit, thread count (<see cref="RunEnvironment"/>).</summary>
    public Dictionary<string, string> Versions { get; set; } = new();

    /// <summary>The figures reported per point, with the defect figure first.</summary>
    public static IReadOnlyList<string> FiguresFor(string defect) => new[]
    {
        $"oracle_{defect}", MetricNames.PsnrOutside, "judge_alignment", "oracle_colour_in_place", "oracle_all_objects_correct", $"oracle_{defect}_residue_share",
        $"reward_{defect}", MetricNames.PsnrInside,
    }.Concat(defect == "rot" ? new[] { "oracle_rot_fixed", "oracle_rot_erased", "oracle_rot_recoloured" } : Array.Empty<string>()).ToList();

    public static IReadOnlyList<string> TradeOffsFor() => new[] { MetricNames.PsnrOutside, "judge_alignment", "oracle_all_objects_correct" };

    public static SweepReport Build(SweepPlan plan, IReadOnlyList<SweepRow> rows)
    {
        var c = plan.Config;
        var figures = FiguresFor(c.Defect);
        var report = new SweepReport
        {
            Defect = c.Defect, Split = c.Split, EvalSeeds = c.EvalSeeds, TrainSeeds = c.TrainSeeds.ToList(), Steps = c.Steps, Concept = c.Concept,
            Prompts = rows.Select(r => r.PromptIndex).Distinct().Count(), DefectFigure = figures[0], TradeOffs = TradeOffsFor().ToList(),
            Selection = c.Selection, Config = c, Versions = RunEnvironment.Describe(),
            Recipe = plan.Settings.FirstOrDefault(x => x.Trained) is SweepSetting first ? plan.TrainingConfig(first, c.TrainSeeds.FirstOrDefault()) : null,
        };
        SweepPoint Point(string setting, string method, string label, IEnumerable<SweepRow> mine)
        {
            var list = mine.ToList();
            var p = new SweepPoint { Setting = setting, Method = method, Label = label };
            foreach (var f in figures)
            {
                var values = list.Where(r => r.Metrics.ContainsKey(f)).Select(r => new BootstrapValue(r.PromptIndex, r.TrainSeed ?? 0, r.Metrics[f])).ToList();
                if (values.Count == 0) continue;
                // One bootstrap stream per figure, so adding a figure never changes another's interval.
                p.Figures[f] = Bootstrap.Interval(values, MethodSummary.AggregationFor(f), c.BootstrapReplicates, seed: StableSeed(f));
            }
            return p;
        }
        report.Base = Point(Evaluator.BaseMethod, Evaluator.BaseMethod, "base model", rows.Where(r => r.Setting == Evaluator.BaseMethod));
        foreach (var s in plan.Settings)
        {
            var mine = rows.Where(r => r.Setting == s.Id).ToList();
            if (mine.Count == 0) throw new InvalidInputException($"{plan.EvalsDir}: no figures for {s.Id}; expected every setting of the sweep to be evaluated");
            report.Points.Add(Point(s.Id, s.Method, s.Label, mine));
        }
        double baseAlignment = Get(report.Base, "judge_alignment");
        foreach (var group in report.Points.GroupBy(p => p.Method))
        {
            var pts = group.ToList();
            if (c.Split == "val") report.Chosen[group.Key] = Choose(pts, report.DefectFigure, baseAlignment, c.Selection).Setting;
            foreach (var t in report.TradeOffs)
            {
                var coords = pts.Select(p => (Get(p, report.DefectFigure), Get(p, t))).ToList();
                foreach (var i in ParetoFront.Of(coords)) pts[i].OnFronts.Add(t);
            }
        }
        report.Verdict = SweepVerdict.Of(report.Base, report.Points, report.DefectFigure);
        return report;
    }

    /// <summary>
    /// The <see cref="SelectionRule"/> applied to one method's points. Equal defect rates go to the higher PSNR outside
    /// (several lambdas can all reach 0%, and the one that keeps more of the picture is the better choice); remaining
    /// ties to the earlier setting in the grid.
    /// </summary>
    public static SweepPoint Choose(IReadOnlyList<SweepPoint> points, string defectFigure, double baseAlignment, SelectionRule rule)
    {
        bool Keeps(SweepPoint p) => Get(p, MetricNames.PsnrOutside) >= rule.MinPsnrOutside &&
                                    (double.IsNaN(baseAlignment) || Get(p, "judge_alignment") >= baseAlignment - rule.MaxAlignmentDrop);
        var keeping = points.Where(Keeps).ToList();
        if (keeping.Count > 0) return keeping.OrderBy(p => Get(p, defectFigure)).ThenByDescending(p => Get(p, MetricNames.PsnrOutside)).First();
        return points.OrderByDescending(p => double.IsNaN(Get(p, MetricNames.PsnrOutside)) ? double.NegativeInfinity : Get(p, MetricNames.PsnrOutside)).First();
    }

    static double Get(SweepPoint p, string figure) => p.Figures.TryGetValue(figure, out var e) ? e.Value : double.NaN;

    static int StableSeed(string s)
    {
        unchecked
        {
            int h = 17;
            foreach (var ch in s) h = h * 31 + ch;
            return h & 0x7FFFFFFF;
        }
    }

    public void Write(string folder)
    {
        var plots = WritePlots(Path.Combine(folder, PlotFolder));
        AtomicFile.WriteAllText(Path.Combine(folder, JsonFile), JsonSerializer.Serialize(this, SweepConfig.Json) + "\n");
        AtomicFile.WriteAllText(Path.Combine(folder, FullMarkdownFile), SweepReportMarkdown.Full(this));
        AtomicFile.WriteAllText(Path.Combine(folder, MarkdownFile), Markdown(plots.Select(p => $"{PlotFolder}/{p}").ToList()));
    }

    /// <summary>sweep-report.md: the verdict box, the narrow table, the plots, the glossary, hyperparameters and versions.</summary>
    public string Markdown(IReadOnlyList<string> plots) => SweepReportMarkdown.Summary(this, plots);

    internal static bool IsRate(string figure) => figure.StartsWith("oracle_", StringComparison.Ordinal);

    internal static string Show(string figure, Estimate e)
    {
        double k = IsRate(figure) ? 100 : 1;
        string F(double v) => double.IsNaN(v) ? "n/a" : double.IsPositiveInfinity(v) ? "inf" : (v * k).ToString(IsRate(figure) || figure.StartsWith("psnr", StringComparison.Ordinal) ? "F1" : "F3", CultureInfo.InvariantCulture);
        return $"{F(e.Value)} [{F(e.Low)}, {F(e.High)}]";
    }

    static readonly IPalette Palette = new ScottPlot.Palettes.Category10();

    /// <summary>One plot per trade-off: defect rate (%) against the figure, every point with its intervals, each method's front as a line.</summary>
    List<string> WritePlots(string dir)
    {
        var files = new List<string>();
        var methods = Points.Select(p => p.Method).Distinct().ToList();
        foreach (var t in TradeOffs)
        {
            var plot = new Plot();
            try
            {
                bool any = false;
                foreach (var (method, mi) in methods.Select((m, i) => (m, i)))
                {
                    var colour = Palette.GetColor(mi);
                    var pts = Points.Where(p => p.Method == method && Finite(p, t) && Finite(p, DefectFigure)).ToList();
                    if (pts.Count == 0) continue;
                    any = true;
                    foreach (var p in pts)
                    {
                        var (x, y) = (p.Figures[t], p.Figures[DefectFigure]);
                        AddSegment(plot, x.Low, y.Value * 100, x.High, y.Value * 100, colour);
                        AddSegment(plot, x.Value, y.Low * 100, x.Value, y.High * 100, colour);
                    }
                    var front = pts.Where(p => p.OnFronts.Contains(t)).OrderBy(p => p.Figures[t].Value).ToList();
                    var line = plot.Add.Scatter(front.Select(p => p.Figures[t].Value).ToArray(), front.Select(p => p.Figures[DefectFigure].Value * 100).ToArray());
                    line.Color = colour;
                    line.LineWidth = 2;
                    line.MarkerSize = 0;
                    var marks = plot.Add.ScatterPoints(pts.Select(p => p.Figures[t].Value).ToArray(), pts.Select(p => p.Figures[DefectFigure].Value * 100).ToArray());
                    marks.Color = colour;
                    marks.MarkerSize = 7;
                    marks.LegendText = method;
                }
                if (!any) continue;
                if (Base.Figures.TryGetValue(DefectFigure, out var baseRate))
                {
                    var h = plot.Add.HorizontalLine(baseRate.Value * 100);
                    h.LinePattern = LinePattern.Dashed;
                    h.Color = Colors.Gray;
                    h.LegendText = "base model";
                }
                plot.Title($"{Defect} rate against {t} ({Split})");
                plot.XLabel(t + (t.StartsWith("psnr", StringComparison.Ordinal) ? " (dB, median)" : IsRate(t) ? " (share)" : " (mean)"));
                plot.YLabel($"{Defect} rate (%)");
                plot.ShowLegend(Edge.Right);
                var name = $"front_{t}.png";
                AtomicFile.WriteAllBytes(Path.Combine(dir, name), plot.GetImageBytes(720, 440, ImageFormat.Png));
                files.Add(name);
            }
            finally { plot.Dispose(); }
        }
        return files;
    }

    static bool Finite(SweepPoint p, string f) => p.Figures.TryGetValue(f, out var e) && double.IsFinite(e.Value);

    static void AddSegment(Plot plot, double x1, double y1, double x2, double y2, Color colour)
    {
        if (!double.IsFinite(x1) || !double.IsFinite(x2) || !double.IsFinite(y1) || !double.IsFinite(y2)) return;
        var seg = plot.Add.Line(x1, y1, x2, y2);
        seg.Color = colour.WithAlpha(0.6);
        seg.LineWidth = 1;
    }
}
