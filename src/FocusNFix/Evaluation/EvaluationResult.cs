using System.Text.Json;
using System.Text.Json.Serialization;
using FocusNFix.IO;

namespace FocusNFix.Evaluation;

/// <summary>
/// Names of the preservation metrics (fine-tuned image vs the base image from the same seed) as report.json and the
/// report tables spell them. Reward, judge and oracle figures use whatever keys the evaluation gives them.
/// </summary>
public static class MetricNames
{
    public const string Psnr = "psnr", PsnrInside = "psnr_inside", PsnrOutside = "psnr_outside";
    public const string Ssim = "ssim", SsimInside = "ssim_inside", SsimOutside = "ssim_outside";
    public const string ChangedShareInside = "changed_share_inside";

    /// <summary>The preservation metrics, in the order the report shows them.</summary>
    public static readonly IReadOnlyList<string> Preservation =
        new[] { Psnr, PsnrInside, PsnrOutside, Ssim, SsimInside, SsimOutside, ChangedShareInside };
}

public enum Aggregation { Mean, Median }

/// <summary>One generated image and its figures.</summary>
public sealed class ImageRecord
{
    public int PromptIndex { get; set; }
    public long Seed { get; set; }
    public string Prompt { get; set; } = "";
    public string Method { get; set; } = "";
    /// <summary>Path of the PNG relative to the report folder, with '/' separators.</summary>
    public string ImagePath { get; set; } = "";
    /// <summary>Metric name to value; NaN where a metric is undefined for this image (e.g. PSNR inside an empty mask).</summary>
    public Dictionary<string, double> Metrics { get; set; } = new();
}

/// <summary>
/// One method's figures over all its images. Each aggregate skips NaN values (<see cref="Counts"/> says how many
/// values went in) and is the aggregate <see cref="AggregationFor"/> names: the median for <c>psnr</c> and
/// <c>psnr_*</c> (PSNR of identical images is +Infinity, which would swamp a mean), the mean for everything else.
/// A metric with no non-NaN value is absent.
/// </summary>
public sealed class MethodSummary
{
    public string Method { get; set; } = "";
    public Dictionary<string, double> Aggregates { get; set; } = new();
    /// <summary>Per metric, how many non-NaN values the aggregate was taken over.</summary>
    public Dictionary<string, int> Counts { get; set; } = new();
    /// <summary>How many images of this method there were.</summary>
    public int Images { get; set; }

    public static Aggregation AggregationFor(string metric) =>
        metric == MetricNames.Psnr || metric.StartsWith("psnr_", StringComparison.Ordinal) ? Aggregation.Median : Aggregation.Mean;
}

/// <summary>One point of a training curve: the logged values (reward, constraint, loss ...) at a step.</summary>
public sealed class CurvePoint
{
    public int Step { get; set; }
    public Dictionary<string, double> Values { get; set; } = new();
}

/// <summary>A method's training log, plotted as one line per value against the step.</summary>
public sealed class TrainingCurve
{
    public string Method { get; set; } = "";
    public List<CurvePoint> Points { get; set; } = new();

    /// <summary>The reward-hacking monitor's evaluations of the run (its monitor.json), or null when it ran none.</summary>
    public MonitorTrace? Monitor { get; set; }

    public TrainingCurve Add(int step, Dictionary<string, double> values)
    {
        Points.Add(new CurvePoint { Step = step, Values = values });
        return this;
    }
}

/// <summary>
/// What a run's reward-hacking monitor saw (train.monitor, its monitor.json): each evaluation of the fixed validation
/// set (target reward, guards, median PSNR outside the mask), the first flag, and which checkpoint a stopped run kept.
/// </summary>
public sealed class MonitorTrace
{
    public List<CurvePoint> Evaluations { get; set; } = new();
    public int? FlagStep { get; set; }
    public string? FlagReason { get; set; }
    /// <summary>The evaluation with the highest target reward that met the guards.</summary>
    public int? BestUnflaggedStep { get; set; }
    /// <summary>Where train.stop_on_hacking ended the run (null: it ran to the end).</summary>
    public int? StoppedAt { get; set; }
    /// <summary>The step whose LoRA a stopped run kept.</summary>
    public int? LoraStep { get; set; }

    /// <summary>One sentence for the report: evaluations, the first flag and its reason, the kept checkpoint.</summary>
    public string Describe()
    {
        var steps = Evaluations.Select(e => e.Step).ToList();
        var sb = new System.Text.StringBuilder();
        sb.Append(System.FormattableString.Invariant($"{steps.Count} evaluation(s)"));
        if (steps.Count > 0) sb.Append(System.FormattableString.Invariant($" (steps {steps.Min()}–{steps.Max()})"));
        if (FlagStep is int f) sb.Append(System.FormattableString.Invariant($"; first flagged at step {f}: {FlagReason}"));
        else sb.Append("; never flagged");
        if (StoppedAt is int s)
            sb.Append(System.FormattableString.Invariant($"; stopped at step {s}, keeping the LoRA of step {(LoraStep is int l ? l.ToString(System.Globalization.CultureInfo.InvariantCulture) : "0 (no evaluation met the guards)")}"));
        else if (BestUnflaggedStep is int b) sb.Append(System.FormattableString.Invariant($"; best evaluation that met the guards: step {b}"));
        return sb.Append('.').ToString();
    }
}

/// <summary>
/// The pictures shown for one (prompt, seed): base | heatmap overlay | mask | each method's image with its difference
/// map to the base image under it. Paths are relative to the report folder; any may be missing (null / absent).
/// </summary>
public sealed class PictureRow
{
    public int PromptIndex { get; set; }
    public long Seed { get; set; }
    public string Prompt { get; set; } = "";
    public string? BaseImage { get; set; }
    public string? HeatmapOverlay { get; set; }
    public string? Mask { get; set; }
    /// <summary>Method name to its image (the base method's image is <see cref="BaseImage"/>).</summary>
    public Dictionary<string, string> MethodImages { get; set; } = new();
    /// <summary>Method name to its difference map against the base image.</summary>
    public Dictionary<string, string> DiffMaps { get; set; } = new();
}

/// <summary>
/// Everything an evaluation produced; report.json is this object. JSON property names are snake_case (dictionary
/// keys such as metric and method names are kept as given). Non-finite numbers are written as the JSON strings
/// <c>"Infinity"</c>, <c>"-Infinity"</c> and <c>"NaN"</c> (Python: <c>float(s)</c> reads them) and read back
/// the same way.
/// </summary>
public sealed class EvaluationResult
{
    public const int CurrentFormatVersion = 1;

    /// <summary>The methods whose run had the reward-hacking monitor, with what it saw (for the plots, the markdown and the HTML).</summary>
    public List<(string Method, MonitorTrace Monitor)> Monitored() => Curves.Where(c => c.Monitor is not null).Select(c => (c.Method, c.Monitor!)).ToList();

    /// <summary>Every value the monitors measured (monitor_target_reward, monitor_guard_NAME, monitor_psnr_outside_mask), first seen first.</summary>
    public List<string> MonitorKeys() => Monitored().SelectMany(m => m.Monitor.Evaluations).SelectMany(p => p.Values.Keys).Distinct().ToList();

    public int FormatVersion { get; set; } = CurrentFormatVersion;
    public string Title { get; set; } = "Evaluation";
    public string BaseModel { get; set; } = "";
    /// <summary>Which entry of <see cref="Methods"/> is the unmodified model (the reference of the "vs base" deltas).</summary>
    public string BaseMethod { get; set; } = "base";
    /// <summary>The metric key of the reward being fixed; shown first and highlighted. Null when there is none.</summary>
    public string? TargetMetric { get; set; }
    /// <summary>Methods in display order, e.g. base, draft, global, focus-n-fix.</summary>
    public List<string> Methods { get; set; } = new();
    public List<string> Prompts { get; set; } = new();
    public List<long> Seeds { get; set; } = new();
    public List<ImageRecord> Images { get; set; } = new();
    public List<MethodSummary> Summaries { get; set; } = new();
    public List<TrainingCurve> Curves { get; set; } = new();
    /// <summary>Free-form facts: commands, wall time, configuration.</summary>
    public Dictionary<string, string> Notes { get; set; } = new();
    public List<PictureRow> Rows { get; set; } = new();
    /// <summary>How the picture rows were chosen, as one sentence for the report ("" when not recorded).</summary>
    public string PictureRowRule { get; set; } = "";
    /// <summary>The few figures the report opens with (the defect rate, alignment, preservation), in order; empty: no summary table.</summary>
    public List<string> HeadlineMetrics { get; set; } = new();
    /// <summary>What the evaluation shows, in a few plain sentences (markdown), for the top of the report; "" when none.</summary>
    public string Verdict { get; set; } = "";

    /// <summary>Aggregates one method's images (see <see cref="MethodSummary"/> for the rules).</summary>
    public static MethodSummary Summarise(string method, IEnumerable<ImageRecord> images)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(images);
        var mine = images.Where(i => i.Method == method).ToList();
        var values = new Dictionary<string, List<double>>();
        var order = new List<string>();
        foreach (var image in mine)
            foreach (var (key, v) in image.Metrics)
            {
                if (!values.TryGetValue(key, out var list)) { values[key] = list = new List<double>(); order.Add(key); }
                if (!double.IsNaN(v)) list.Add(v);
            }
        var summary = new MethodSummary { Method = method, Images = mine.Count };
        foreach (var key in order)
        {
            var list = values[key];
            summary.Counts[key] = list.Count;
            if (list.Count == 0) continue;
            summary.Aggregates[key] = MethodSummary.AggregationFor(key) == Aggregation.Median ? Median(list) : list.Average();
        }
        return summary;
    }

    /// <summary>Replaces <see cref="Summaries"/> with one per method (those of <see cref="Methods"/>, then any other method found in the images).</summary>
    public void ComputeSummaries()
    {
        Summaries = AllMethods().Select(m => Summarise(m, Images)).ToList();
    }

    /// <summary><see cref="Methods"/> followed by methods that only occur in images, summaries, curves or picture rows.</summary>
    public List<string> AllMethods()
    {
        var all = new List<string>(Methods);
        void Add(string m) { if (!all.Contains(m)) all.Add(m); }
        foreach (var i in Images) Add(i.Method);
        foreach (var s in Summaries) Add(s.Method);
        foreach (var c in Curves) Add(c.Method);
        foreach (var row in Rows) foreach (var m in row.MethodImages.Keys.Concat(row.DiffMaps.Keys)) Add(m);
        return all;
    }

    static double Median(List<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        int n = sorted.Length;
        if (n % 2 == 1) return sorted[n / 2];
        double lo = sorted[n / 2 - 1], hi = sorted[n / 2];
        return lo == hi ? lo : lo / 2 + hi / 2;  // halves first: +Inf + +Inf stays +Inf, no overflow
    }

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Parses report.json text; <paramref name="source"/> names it in error messages.</summary>
    public static EvaluationResult FromJson(string json, string source = "report.json")
    {
        EvaluationResult? r;
        try { r = JsonSerializer.Deserialize<EvaluationResult>(json, JsonOptions); }
        catch (JsonException e) { throw new InvalidInputException($"{source}: not a valid evaluation report ({e.Message})"); }
        if (r is null) throw new InvalidInputException($"{source}: not a valid evaluation report (null)");
        if (r.FormatVersion > CurrentFormatVersion)
            throw new InvalidInputException($"{source}: format_version {r.FormatVersion} is newer than this program reads ({CurrentFormatVersion})");
        r.Normalise();
        return r;
    }

    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson() + "\n");

    public static EvaluationResult Load(string path)
    {
        return FromJson(InputFile.ReadAllText(path, "evaluation report"), path);
    }

    public EvaluationResult Clone() => FromJson(ToJson(), "clone");

    // JSON null for a collection or string leaves it null; the rest of the code may assume none are.
    void Normalise()
    {
        Title ??= "";
        BaseModel ??= "";
        BaseMethod ??= "base";
        Methods = (Methods ?? new()).Where(m => m is not null).ToList();
        Prompts = (Prompts ?? new()).Select(p => p ?? "").ToList();
        Seeds ??= new();
        Notes ??= new();
        PictureRowRule ??= "";
        HeadlineMetrics = (HeadlineMetrics ?? new()).Where(m => m is not null).ToList();
        Verdict ??= "";
        Images = (Images ?? new()).Where(i => i is not null).ToList();
        foreach (var i in Images) { i.Prompt ??= ""; i.Method ??= ""; i.ImagePath ??= ""; i.Metrics ??= new(); }
        Summaries = (Summaries ?? new()).Where(s => s is not null).ToList();
        foreach (var s in Summaries) { s.Method ??= ""; s.Aggregates ??= new(); s.Counts ??= new(); }
        Curves = (Curves ?? new()).Where(c => c is not null).ToList();
        foreach (var c in Curves)
        {
            c.Method ??= "";
            c.Points = (c.Points ?? new()).Where(p => p is not null).ToList();
            foreach (var p in c.Points) p.Values ??= new();
            if (c.Monitor is { } m)
            {
                m.Evaluations = (m.Evaluations ?? new()).Where(p => p is not null).ToList();
                foreach (var p in m.Evaluations) p.Values ??= new();
            }
        }
        Rows = (Rows ?? new()).Where(r => r is not null).ToList();
        foreach (var row in Rows) { row.Prompt ??= ""; row.MethodImages ??= new(); row.DiffMaps ??= new(); }
    }
}
