using FocusNFix.Training;
using Xunit;

namespace FocusNFix.Tests.Training;

public class HackingMonitorTests
{
    static MonitorPoint P(int step, double target, double alignment, double psnr = 99) =>
        new(step, target, new Dictionary<string, double> { ["judge_alignment"] = alignment }, psnr);

    // DRaFT-like: the reward climbs while alignment collapses from step 20 on.
    static readonly MonitorPoint[] Hacking = { P(0, -2.0, 1.0), P(10, -1.0, 0.99), P(20, -0.5, 0.90), P(30, -0.1, 0.60) };
    // Focus-N-Fix-like: the reward climbs, alignment holds, PSNR stays above 35 dB.
    static readonly MonitorPoint[] Fixing = { P(0, -2.0, 1.0), P(10, -1.2, 1.0, 45), P(20, -0.8, 0.98, 41), P(30, -0.6, 0.99, 40) };

    [Fact]
    public void TheFirstEvaluationWhereAGuardFallsPastItsMarginIsFlagged()
    {
        var rule = new HackingRule { GuardMargin = 0.05 };
        var flags = Hacking.Select(p => rule.Check(Hacking[0], p)).ToList();
        Assert.Null(flags[0]);
        Assert.Null(flags[1]);
        Assert.NotNull(flags[2]);
        Assert.Contains("judge_alignment", flags[2]!.Reason);
        Assert.Equal(20, flags[2]!.Step);
        Assert.Equal(10, rule.BestStep(Hacking));
    }

    [Fact]
    public void AFixThatKeepsTheGuardsIsNeverFlagged()
    {
        var rule = new HackingRule { GuardMargin = 0.05, MinPsnrOutside = 35 };
        Assert.All(Fixing, p => Assert.Null(rule.Check(Fixing[0], p)));
        Assert.Equal(30, rule.BestStep(Fixing));
    }

    [Fact]
    public void AGuardFallingWithoutARewardGainIsNotHackingButAPsnrUnderTheBudgetIs()
    {
        var rule = new HackingRule { GuardMargin = 0.05, MinPsnrOutside = 35 };
        Assert.Null(rule.Check(P(0, -2, 1.0), P(10, -2.5, 0.5)));
        var flag = rule.Check(P(0, -2, 1.0), P(10, -2.5, 1.0, psnr: 30));
        Assert.NotNull(flag);
        Assert.Contains("under the budget", flag!.Reason);
    }
}
