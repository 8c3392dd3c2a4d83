using System.Net;
using System.Text;

namespace FocusNFix.Evaluation;

/// <summary>Which way a figure improves: up (↑), down (↓), or neither (a diagnostic with no better side).</summary>
public enum Better { Higher, Lower, Neither }

/// <summary>One figure's entry in a report's glossary.</summary>
public sealed record FigureInfo(string Name, string Meaning, string Unit, Better Better)
{
    public string Arrow => Better switch { Better.Higher => "↑", Better.Lower => "↓", _ => "–" };
}

/// <summary>
/// What every figure a report shows means, its unit and which direction is better. The reports colour a change by
/// this direction (an improvement is never drawn in red because the number went down) and print it as a glossary.
/// Names follow the evaluator's keys: preservation (<see cref="MetricNames"/>), rewards <c>reward_KIND</c>, the judge,
/// the ShapesWorld oracle's <c>oracle_*</c> figures and the training log's curve values.
/// </summary>
public static class FigureGlossary
{
    public static FigureInfo Describe(string figure)
    {
        ArgumentNullException.ThrowIfNull(figure);
        FigureInfo I(string meaning, string unit, Better better) => new(figure, meaning, unit, better);
        switch (figure)
        {
            case MetricNames.Psnr: return I("PSNR of the image against the base model's image from the same seed (median over images)", "dB", Better.Higher);
            case MetricNames.PsnrInside: return I("PSNR inside the base image's problem mask: low means the region was repainted (the fix is meant to change it)", "dB", Better.Neither);
            case MetricNames.PsnrOutside: return I("PSNR outside the problem mask against the base image: how well everything else was kept (median over images)", "dB", Better.Higher);
            case MetricNames.Ssim: return I("SSIM against the base image", "0–1", Better.Higher);
            case MetricNames.SsimInside: return I("SSIM inside the problem mask (the fix is meant to change it)", "0–1", Better.Neither);
            case MetricNames.SsimOutside: return I("SSIM outside the problem mask: how well everything else was kept", "0–1", Better.Higher);
            case MetricNames.ChangedShareInside: return I("share of the mask's pixels that changed (where the fix happened)", "share", Better.Neither);
            case "judge_alignment": return I("the alignment judge's share of prompted objects with the right colour and shape", "share", Better.Higher);
            case "target_reward": return I("the reward being fixed (higher: less of the defect)", "reward", Better.Higher);
            case "oracle_colour_in_place": return I("oracle: share of prompted objects whose colour is present in place", "share", Better.Higher);
            case "oracle_all_objects_correct": return I("oracle: every prompted object has its colour and shape (alignment)", "rate", Better.Higher);
            case "oracle_all_shapes_decided": return I("oracle: every object's shape could be decided", "rate", Better.Higher);
            case "oracle_rot_fixed": return I("oracle: the base image's rot was repainted in the object's own colour and shape", "rate", Better.Higher);
            case "oracle_rot_erased": return I("oracle: the rotten object was removed (a failure, not a fix)", "rate", Better.Lower);
            case "oracle_rot_recoloured": return I("oracle: the rotten object was repainted in another colour (a failure)", "rate", Better.Lower);
            case "oracle_rot_misshapen": return I("oracle: the rotten object lost its shape (a failure)", "rate", Better.Lower);
            case "oracle_rot_left": return I("oracle: the rot is still there", "rate", Better.Lower);
            // Training-log values (the curves).
            case "reward": return I("training: mean reward of the step's samples", "reward", Better.Higher);
            case "constraint": return I("training: the constraint term (distance to the base model's images)", "per step", Better.Lower);
            case "loss": return I("training: the minimised objective (−reward + λ·constraint)", "per step", Better.Lower);
            case "change_outside_mask": return I("training: change of the samples outside the mask", "per step", Better.Lower);
            case "lambda": return I("training: the constraint weight λ the step used (moved by the preservation budget's dual ascent)", "λ", Better.Neither);
            case "psnr_outside_training": return I("training: mean PSNR outside the mask of the step's samples against the originals (what the budget steers; 100 = identical)", "dB", Better.Higher);
            case "monitor_target_reward": return I("monitor: mean target reward on the fixed validation set", "reward", Better.Higher);
            case "monitor_psnr_outside_mask": return I("monitor: median PSNR outside the mask against the validation set's base images (100 = identical)", "dB", Better.Higher);
        }
        if (figure.StartsWith("monitor_guard_", StringComparison.Ordinal))
            return I($"monitor: mean score of the guard {figure["monitor_guard_".Length..]} on the fixed validation set (a drop while the target rises is hacking)", "score", Better.Higher);
        if (figure.StartsWith("oracle_", StringComparison.Ordinal))
        {
            var kind = figure["oracle_".Length..];
            if (kind.EndsWith("_residue_share", StringComparison.Ordinal))
                return I($"oracle: share of the base image's {kind[..^"_residue_share".Length]} mask still showing a residue of the defect", "share", Better.Lower);
            if (kind.EndsWith("_residue", StringComparison.Ordinal))
                return I($"oracle: a residue of the {kind[..^"_residue".Length]} defect (a reserved colour or faint pixels) is left", "rate", Better.Lower);
            if (!kind.Contains('_')) return I($"oracle: the {kind} defect is present (the defect rate)", "rate", Better.Lower);
        }
        if (figure.StartsWith("reward_", StringComparison.Ordinal))
            return I($"the {figure["reward_".Length..]} reward model's reward (higher: less of that defect)", "reward", Better.Higher);
        return I("(no entry)", "", Better.Neither);
    }

    /// <summary>+1 when a change of <paramref name="delta"/> in <paramref name="figure"/> is an improvement, −1 when it is worse, 0 when neither (no change, NaN, or a figure with no better side).</summary>
    public static int Goodness(string figure, double delta)
    {
        if (double.IsNaN(delta) || delta == 0) return 0;
        return Describe(figure).Better switch
        {
            Better.Higher => Math.Sign(delta),
            Better.Lower => -Math.Sign(delta),
            _ => 0,
        };
    }

    /// <summary>The glossary as a markdown table, one row per figure in the order given (duplicates once).</summary>
    public static string Markdown(IEnumerable<string> figures)
    {
        var sb = new StringBuilder("| figure | better | unit | meaning |\n| --- | :---: | --- | --- |\n");
        foreach (var f in figures.Distinct())
        {
            var d = Describe(f);
            sb.Append("| `").Append(f).Append("` | ").Append(d.Arrow).Append(" | ").Append(d.Unit).Append(" | ").Append(d.Meaning.Replace("|", "\\|")).Append(" |\n");
        }
        return sb.ToString();
    }

    /// <summary>The glossary as an HTML table.</summary>
    public static string Html(IEnumerable<string> figures)
    {
        var sb = new StringBuilder("<table class=\"metrics glossary\">\n<tr><th>figure</th><th>better</th><th>unit</th><th>meaning</th></tr>\n");
        foreach (var f in figures.Distinct())
        {
            var d = Describe(f);
            sb.Append("<tr><td><code>").Append(WebUtility.HtmlEncode(f)).Append("</code></td><td>").Append(d.Arrow).Append("</td><td>")
              .Append(WebUtility.HtmlEncode(d.Unit)).Append("</td><td>").Append(WebUtility.HtmlEncode(d.Meaning)).Append("</td></tr>\n");
        }
        return sb.Append("</table>\n").ToString();
    }

    /// <summary>The sentence that goes with the glossary.</summary>
    public const string Legend = "↑: higher is better, ↓: lower is better, –: neither (a diagnostic). Rates and shares are over images (0–1; the sweep report shows them in %).";
}
