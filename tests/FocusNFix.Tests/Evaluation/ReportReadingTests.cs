using FocusNFix.Evaluation;
using Xunit;

namespace FocusNFix.Tests.Evaluation;

/// <summary>What makes a report read at a glance: the glossary's directions and the colours they give, curve smoothing, picture-row choice.</summary>
public class ReportReadingTests
{
    [Theory]
    [InlineData("psnr_outside", +2.0, 1)]
    [InlineData("psnr_outside", -2.0, -1)]
    [InlineData("oracle_hazard", -0.3, 1)]    // fewer defects: an improvement although the number went down
    [InlineData("oracle_hazard", +0.3, -1)]
    [InlineData("oracle_rot_residue_share", -0.1, 1)]
    [InlineData("oracle_rot_erased", +0.1, -1)]
    [InlineData("reward_hazard", +0.5, 1)]
    [InlineData("judge_alignment", -0.05, -1)]
    [InlineData("psnr_inside", -5.0, 0)]       // the fix is meant to change the mask: no better side
    [InlineData("oracle_hazard", 0.0, 0)]
    [InlineData("oracle_hazard", double.NaN, 0)]
    public void ChangesAreBetterOrWorseByTheFiguresDirectionNotTheSign(string figure, double delta, int expected)
    {
        Assert.Equal(expected, FigureGlossary.Goodness(figure, delta));
    }

    [Fact]
    public void TheHtmlReportNeverDrawsALowerDefectRateInRedAndPrintsTheGlossary()
    {
        var r = new EvaluationResult { Methods = { "base", "focus-n-fix" }, TargetMetric = "reward_hazard" };
        r.Summaries.Add(new MethodSummary { Method = "base", Images = 4, Aggregates = { ["reward_hazard"] = -1.0, ["oracle_hazard"] = 0.5, ["psnr_outside"] = 30 } });
        r.Summaries.Add(new MethodSummary { Method = "focus-n-fix", Images = 4, Aggregates = { ["reward_hazard"] = -0.2, ["oracle_hazard"] = 0.1, ["psnr_outside"] = 25 } });
        var html = ReportHtml.Build(r, Array.Empty<PlotFile>());
        // oracle_hazard fell by 0.4 (better), psnr_outside fell by 5 (worse), the reward rose (better).
        Assert.Contains("<td class=\"num better\">-0.4</td>", html);
        Assert.Contains("<td class=\"num worse\">-5</td>", html);
        Assert.Contains("<td class=\"num target better\">+0.8</td>", html);
        Assert.DoesNotContain("class=\"num neg", html);
        Assert.Contains("id=\"glossary\"", html);
        Assert.Contains("<code>oracle_hazard</code></td><td>↓</td>", html);
        Assert.Contains("<code>psnr_outside</code></td><td>↑</td><td>dB</td>", html);
        var md = FigureGlossary.Markdown(new[] { "oracle_hazard", "psnr_outside", "oracle_hazard" });
        Assert.Equal(4, md.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);  // header, rule, two figures
    }

    [Fact]
    public void EmaIsDebiasedFollowsAStepWithLagAndSkipsNonFiniteValues()
    {
        // A constant stays constant from the first point on (no pull towards 0).
        Assert.All(CurveSmoothing.Ema(new[] { 5.0, 5, 5, 5 }, 9), v => Assert.Equal(5, v, 12));
        // A step from 0 to 1: rises monotonically, lags behind, never overshoots.
        var step = Enumerable.Repeat(0.0, 10).Concat(Enumerable.Repeat(1.0, 10)).ToArray();
        var s = CurveSmoothing.Ema(step, 3);  // alpha = 0.5
        Assert.Equal(0, s[9], 12);
        // Debiased: the weights so far sum to 1 − 0.5^n.
        Assert.Equal(0.5 / (1 - Math.Pow(0.5, 11)), s[10], 12);
        Assert.Equal(0.75 / (1 - Math.Pow(0.5, 12)), s[11], 12);
        for (int i = 11; i < s.Length; i++) Assert.True(s[i] > s[i - 1] && s[i] < 1);
        // Span 1 is the raw curve; NaN repeats the last smoothed value.
        Assert.Equal(step, CurveSmoothing.Ema(step, 1));
        var gap = CurveSmoothing.Ema(new[] { double.NaN, 2.0, double.NaN, 4.0 }, 3);
        Assert.True(double.IsNaN(gap[0]));
        Assert.Equal(2, gap[1], 12);
        Assert.Equal(2, gap[2], 12);
        Assert.Equal((0.5 * 0.5 * 2 + 0.5 * 4) / (0.5 * 0.5 + 0.5), gap[3], 12);
        Assert.Equal(1, CurveSmoothing.SpanFor(15));
        Assert.Equal(20, CurveSmoothing.SpanFor(200));
        Assert.Equal(CurveSmoothing.MaxSpan, CurveSmoothing.SpanFor(100000));
        Assert.Throws<ArgumentOutOfRangeException>(() => CurveSmoothing.Ema(step, 0));
    }

    static ImageRecord Img(string method, int prompt, double reward) =>
        new() { Method = method, PromptIndex = prompt, Seed = 1, Metrics = { ["reward_hazard"] = reward } };

    [Fact]
    public void PictureRowsGoWhereTheMethodsDifferMost()
    {
        // Prompt 0: every method alike; prompt 1: one method fixed it; prompt 2: a smaller difference; prompt 3: NaN everywhere.
        var images = new[]
        {
            Img("base", 0, -1), Img("global", 0, -1), Img("focus-n-fix", 0, -1),
            Img("base", 1, -1), Img("global", 1, -0.9), Img("focus-n-fix", 1, 0),
            Img("base", 2, -1), Img("global", 2, -0.5), Img("focus-n-fix", 2, -0.8),
            Img("base", 3, double.NaN), Img("global", 3, double.NaN), Img("focus-n-fix", 3, double.NaN),
        };
        var spreads = Enumerable.Range(0, 4).Select(p => PictureRowChoice.Spread(images.Where(i => i.PromptIndex == p), "reward_hazard")).ToList();
        Assert.Equal(new[] { 0, 1, 0.5, PictureRowChoice.Undefined }, spreads.Select(v => Math.Round(v, 9)));
        Assert.Equal(new[] { 1, 2 }, PictureRowChoice.Order(spreads, new[] { false, false, false, true }, new[] { 0, 1, 2, 3 }, 2));
        // Equal spreads: a non-empty mask first, then the earlier position.
        Assert.Equal(new[] { 2, 0, 1 }, PictureRowChoice.Order(new[] { 0.0, 0, 0 }, new[] { false, false, true }, new[] { 0, 1, 2 }, 3));
        Assert.Contains("largest spread", PictureRowChoice.Rule("reward_hazard", 3));
        Assert.DoesNotContain("spread", PictureRowChoice.Rule("reward_hazard", 1));
    }
}
