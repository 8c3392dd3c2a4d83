using System.Text;
using System.Text.Json;
using FocusNFix.Evaluation;

namespace FocusNFix.Experiments;

/// <summary>
/// The sweep report's two markdown files. sweep-report.md reads at a glance: the verdict box, a narrow table (defect rate,
/// PSNR outside, alignment, with intervals), the Pareto plots, the glossary, the hyperparameters and versions.
/// sweep-report-full.md, linked from it, has every figure of every setting.
/// </summary>
public static class SweepReportMarkdown
{
    /// <summary>The narrow table's figures after the defect rate, in order.</summary>
    public static readonly IReadOnlyList<string> NarrowFigures = new[] { MetricNames.PsnrOutside, SweepVerdict.AlignmentFigure, SweepVerdict.JudgeFigure };

    public static string Summary(SweepReport r, IReadOnlyList<string> plots)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Sweep: fixing the {r.Defect} defect ({r.Split} prompts)");
        sb.AppendLine();
        sb.Append(r.Verdict.Markdown(r.DefectFigure, r.Base));
        sb.AppendLine();
        sb.AppendLine(Scope(r));
        sb.AppendLine();
        sb.AppendLine(SelectionSentence(r));
        sb.AppendLine();
        var figures = new[] { r.DefectFigure }.Concat(NarrowFigures).ToList();
        sb.AppendLine("| method | setting | " + string.Join(" | ", figures.Select(f => $"{f}{UnitOf(f)} {FigureGlossary.Describe(f).Arrow}")) + " | on PSNR front |");
        sb.AppendLine("|---|---|" + string.Concat(figures.Select(_ => "---|")) + "---|");
        foreach (var p in new[] { r.Base }.Concat(r.Points))
        {
            var cells = figures.Select(f => p.Figures.TryGetValue(f, out var e) ? SweepReport.Show(f, e) : "—");
            var chosen = r.Chosen.TryGetValue(p.Method, out var id) && id == p.Setting ? " *" : "";
            var front = p == r.Base ? "" : p.OnFronts.Contains(MetricNames.PsnrOutside) ? "yes" : "no";
            sb.AppendLine($"| {p.Method} | {p.Label}{chosen} | {string.Join(" | ", cells)} | {front} |");
        }
        sb.AppendLine();
        sb.AppendLine($"Every figure of every setting (residue, rewards, PSNR inside, rot outcomes, all fronts): [{SweepReport.FullMarkdownFile}]({SweepReport.FullMarkdownFile}).");
        sb.AppendLine();
        if (plots.Count > 0)
        {
            sb.AppendLine("## Pareto fronts");
            sb.AppendLine();
            foreach (var plot in plots) sb.AppendLine($"![{Path.GetFileNameWithoutExtension(plot)}]({plot})");
            sb.AppendLine();
        }
        sb.AppendLine("## Glossary");
        sb.AppendLine();
        sb.Append(FigureGlossary.Markdown(AllFigures(r)));
        sb.AppendLine();
        sb.AppendLine(FigureGlossary.Legend + " Each figure: point estimate [bootstrap 95% interval over prompts and training seeds]; PSNR is the median over images, other figures are means.");
        sb.AppendLine();
        AppendSettings(sb, r);
        return sb.ToString();
    }

    /// <summary>sweep-report-full.md: every figure of every setting and which fronts it is on.</summary>
    public static string Full(SweepReport r)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Sweep: fixing the {r.Defect} defect ({r.Split} prompts): every figure");
        sb.AppendLine();
        sb.AppendLine(Scope(r));
        sb.AppendLine();
        sb.AppendLine(SelectionSentence(r));
        sb.AppendLine();
        var figures = AllFigures(r);
        sb.AppendLine("| method | settings | " + string.Join(" | ", figures.Select(f => $"{f} {FigureGlossary.Describe(f).Arrow}")) + " | on front (" + string.Join(", ", r.TradeOffs) + ") |");
        sb.AppendLine("|---|---|" + string.Concat(figures.Select(_ => "---|")) + "---|");
        foreach (var p in new[] { r.Base }.Concat(r.Points))
        {
            var cells = figures.Select(f => p.Figures.TryGetValue(f, out var e) ? SweepReport.Show(f, e) : "");
            var fronts = string.Join(", ", r.TradeOffs.Select(t => p.OnFronts.Contains(t) ? "yes" : "no"));
            var chosen = r.Chosen.TryGetValue(p.Method, out var id) && id == p.Setting ? " *" : "";
            sb.AppendLine($"| {p.Method} | {p.Label}{chosen} | {string.Join(" | ", cells)} | {(p == r.Base ? "" : fronts)} |");
        }
        sb.AppendLine();
        sb.AppendLine("Rates and shares in %, PSNR in dB (median), other figures as means; the glossary is in " + $"[{SweepReport.MarkdownFile}]({SweepReport.MarkdownFile}).");
        return sb.ToString();
    }

    static List<string> AllFigures(SweepReport r) => new[] { r.Base }.Concat(r.Points).SelectMany(p => p.Figures.Keys).Distinct().ToList();

    static string UnitOf(string figure) =>
        SweepReport.IsRate(figure) ? " %" : figure.StartsWith("psnr", StringComparison.Ordinal) ? " dB" : "";

    static string Scope(SweepReport r)
    {
        var s = $"{r.Prompts} prompts x {r.EvalSeeds} evaluation seed(s); trained settings: {r.Steps} steps, training seeds {string.Join(", ", r.TrainSeeds)}. " +
                "Training-free baselines (SLD, negative prompt) have no training seed.";
        if (r.Concept != null) s += $" SLD and the negative prompt steer away from \"{r.Concept}\".";
        if (r.Command.Length > 0) s += $"\n\nCommand: `{r.Command}`";
        return s;
    }

    static string SelectionSentence(SweepReport r) => r.Split == "val"
        ? FormattableString.Invariant(
            $"Chosen per method (marked *): the lowest {r.DefectFigure} among settings with median psnr_outside >= {r.Selection.MinPsnrOutside} dB and judge_alignment within {r.Selection.MaxAlignmentDrop} of the base model's (equal rates: the higher psnr_outside), else the highest psnr_outside.") +
          " Run the chosen settings once on the test prompts with `fnf sweep --final-from <this folder>`."
        : "This is a test sweep: its figures are the final ones; the settings were chosen on val.";

    static void AppendSettings(StringBuilder sb, SweepReport r)
    {
        sb.AppendLine("## Hyperparameters and versions");
        sb.AppendLine();
        foreach (var (k, v) in r.Versions) sb.AppendLine($"- {k}: `{v}`");
        if (r.Versions.Count > 0) sb.AppendLine();
        if (r.Config != null)
        {
            sb.AppendLine("<details><summary>the sweep's configuration (sweep.json)</summary>");
            sb.AppendLine();
            sb.AppendLine("```json");
            sb.AppendLine(r.Config.ToJson());
            sb.AppendLine("```");
            sb.AppendLine();
            sb.AppendLine("</details>");
            sb.AppendLine();
        }
        if (r.Recipe != null)
        {
            sb.AppendLine("<details><summary>the training recipe every trained setting shares (shown for the first; the others differ in λ, learning rate, seed and folders)</summary>");
            sb.AppendLine();
            sb.AppendLine("```json");
            sb.AppendLine(JsonSerializer.Serialize(r.Recipe, Training.TrainingConfig.Json));
            sb.AppendLine("```");
            sb.AppendLine();
            sb.AppendLine("</details>");
        }
    }
}
