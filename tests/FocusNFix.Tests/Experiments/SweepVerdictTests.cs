using FocusNFix.Evaluation;
using FocusNFix.Experiments;
using Xunit;

namespace FocusNFix.Tests.Experiments;

/// <summary>The verdict box on fixtures of sweep points: a case where Focus-N-Fix dominates, cases where it does not, one with no overlap range.</summary>
public class SweepVerdictTests
{
    const string Defect = "oracle_rot";

    /// <summary>A point with the rate ±<paramref name="rateHalf"/> and PSNR ±<paramref name="psnrHalf"/> as its interval, alignment 0.9 unless given.</summary>
    static SweepPoint P(string method, string id, double rate, double psnr, double rateHalf = 0.01, double psnrHalf = 0.5, double alignment = 0.9) => new()
    {
        Method = method, Setting = id, Label = id,
        Figures = new()
        {
            [Defect] = new(rate, rate - rateHalf, rate + rateHalf, 100),
            [MetricNames.PsnrOutside] = new(psnr, psnr - psnrHalf, psnr + psnrHalf, 100),
            [SweepVerdict.AlignmentFigure] = new(alignment, alignment - 0.02, alignment + 0.02, 100),
            [SweepVerdict.JudgeFigure] = new(alignment, alignment - 0.02, alignment + 0.02, 100),
        },
    };

    static readonly SweepPoint Base = P("base", "base", 0.60, double.PositiveInfinity, alignment: 0.9);

    static SweepPoint[] Global() => new[] { P("global", "g1", 0.10, 24), P("global", "g2", 0.20, 28), P("global", "g3", 0.40, 32) };

    [Fact]
    public void FocusNFixDominatesWhenItsPsnrIsAtLeast3DbHigherWithSeparateIntervalsAtEveryMatchedRate()
    {
        var points = Global().Concat(new[] { P("focus-n-fix", "f1", 0.15, 33), P("focus-n-fix", "f2", 0.25, 36), P("draft", "d1", 0.05, 15) }).ToList();
        var v = SweepVerdict.Of(Base, points, Defect);
        Assert.Equal(SweepVerdict.Dominates, v.Outcome);
        Assert.Equal(0.30, v.RangeLimit, 9);
        // f1 at 15%: global interpolated halfway between 24 and 28 dB = 26 [25.5, 26.5]; gap +7 [6, 8].
        var f1 = v.AtMatchedDefect.Single(c => c.Setting == "f1");
        Assert.Equal(26, f1.Other.Value, 9);
        Assert.Equal(25.5, f1.Other.Low, 9);
        Assert.Equal(7, f1.Gap.Value, 9);
        Assert.Equal(6, f1.Gap.Low, 9);
        Assert.Equal(8, f1.Gap.High, 9);
        Assert.Equal(2, v.AtMatchedDefect.Count);
        Assert.True(v.AlignmentKept);
        // Every other method at its closest defect rate to FnF's lowest in the range (f1, 15%).
        Assert.Equal(new[] { "f1", "g1", "d1" }, v.Closest.Select(c => c.Setting));
        var box = v.Markdown(Defect, Base);
        Assert.Contains("**dominates**", box);
        Assert.Contains("+7.0 dB** [+6.0, +8.0]", box);
    }

    [Fact]
    public void OverlappingIntervalsAreNotAWinEvenWithALargeGap()
    {
        // f1 is 3.8 dB above the global front at 18% (27.2 [26.7, 27.7] dB), but its interval is ±4 dB: the intervals overlap.
        // (At its PSNR, 31 dB, the global constraint no longer removes half the defects: no matched-PSNR point.)
        var points = Global().Concat(new[] { P("focus-n-fix", "f1", 0.18, 31, psnrHalf: 4) }).ToList();
        var v = SweepVerdict.Of(Base, points, Defect);
        Assert.Equal(SweepVerdict.DoesNotDominate, v.Outcome);
        var c = Assert.Single(v.AtMatchedDefect);
        Assert.Equal(3.8, c.Gap.Value, 9);
        Assert.True(c.Gap.Low < 0);
        Assert.Empty(v.AtMatchedPsnr);
        Assert.Contains("overlap", v.Reason);
        Assert.Contains("does **not** win", v.Markdown(Defect, Base));
    }

    [Fact]
    public void TheGlobalConstraintBetterIsSaidPlainly()
    {
        var points = Global().Concat(new[] { P("focus-n-fix", "f1", 0.15, 22, alignment: 0.8) }).ToList();
        var v = SweepVerdict.Of(Base, points, Defect);
        Assert.Equal(SweepVerdict.DoesNotDominate, v.Outcome);
        Assert.Contains("global constraint is better", v.Reason);
        Assert.True(v.AtMatchedDefect.Single().Gap.Value < 0);
        // Alignment 10 points below the base model's: not kept.
        Assert.False(v.AlignmentKept);
        Assert.Contains("**not kept**", v.Markdown(Defect, Base));
    }

    [Fact]
    public void AtMatchedPsnrATenPointLowerDefectRateWins()
    {
        // f1 has the global front's PSNR at 28 dB (g2: 20%) with a 5% defect rate: 15 points lower, intervals apart.
        // Its PSNR is below the global front's at every defect rate it spans (no matched defect rate: 5% < 10%).
        var points = Global().Concat(new[] { P("focus-n-fix", "f1", 0.05, 28) }).ToList();
        var v = SweepVerdict.Of(Base, points, Defect);
        Assert.Empty(v.AtMatchedDefect);
        var c = Assert.Single(v.AtMatchedPsnr);
        Assert.Equal(0.15, c.Gap.Value, 9);
        Assert.Equal(SweepVerdict.Dominates, v.Outcome);
    }

    [Fact]
    public void NoOverlapRangeWhenOneMethodNeverRemovesHalfTheDefects()
    {
        // The global constraint never gets below 35% (base 60%: half is 30%).
        var points = new[] { P("global", "g1", 0.35, 30), P("global", "g2", 0.50, 35), P("focus-n-fix", "f1", 0.10, 38) }.ToList();
        var v = SweepVerdict.Of(Base, points, Defect);
        Assert.Equal(SweepVerdict.NoOverlap, v.Outcome);
        Assert.Contains("the global constraint has no front point", v.Reason);
        Assert.Contains("**cannot be compared**", v.Markdown(Defect, Base));
        // The methods are still shown at their closest defect rate.
        Assert.Equal(new[] { "f1", "g1" }, v.Closest.Select(x => x.Setting));
    }

    [Fact]
    public void NoVerdictWithoutAGlobalConstraintOrWithoutDefects()
    {
        Assert.Equal(SweepVerdict.NotComparable, SweepVerdict.Of(Base, new[] { P("focus-n-fix", "f1", 0.1, 30) }, Defect).Outcome);
        var clean = P("base", "base", 0, double.PositiveInfinity);
        var v = SweepVerdict.Of(clean, Global().Append(P("focus-n-fix", "f1", 0.1, 30)).ToList(), Defect);
        Assert.Equal(SweepVerdict.NotComparable, v.Outcome);
        Assert.Contains("no defect to remove", v.Reason);
    }

    [Fact]
    public void InterpolationNeverExtrapolatesBeyondTheFront()
    {
        var front = Global();
        Assert.Null(SweepVerdict.Interpolate(front, Defect, 0.05, MetricNames.PsnrOutside));
        Assert.Null(SweepVerdict.Interpolate(front, Defect, 0.45, MetricNames.PsnrOutside));
        Assert.Equal(32, SweepVerdict.Interpolate(front, Defect, 0.40, MetricNames.PsnrOutside)!.Value.Value, 9);
        Assert.Equal(30, SweepVerdict.Interpolate(front, Defect, 0.30, MetricNames.PsnrOutside)!.Value.Value, 9);
    }
}
