using FocusNFix.Evaluation;
using Xunit;

namespace FocusNFix.Tests.Evaluation;

public class BootstrapTests
{
    static List<BootstrapValue> Values(int prompts, long[] seeds, Func<int, long, double> f) =>
        Enumerable.Range(0, prompts).SelectMany(p => seeds.Select(s => new BootstrapValue(p, s, f(p, s)))).ToList();

    [Fact]
    public void IdenticalValuesGiveAZeroWidthInterval()
    {
        var e = Bootstrap.Interval(Values(10, new long[] { 0, 1, 2 }, (_, _) => 0.25), Aggregation.Mean);
        Assert.Equal(0.25, e.Value);
        Assert.Equal(0.25, e.Low);
        Assert.Equal(0.25, e.High);
        Assert.Equal(30, e.Count);
    }

    [Fact]
    public void TheIntervalContainsTheEstimateAndIsDeterministic()
    {
        var v = Values(40, new long[] { 0, 1, 2 }, (p, s) => (p * 7 + s * 3) % 10 / 10.0);
        var a = Bootstrap.Interval(v, Aggregation.Mean, seed: 5);
        var b = Bootstrap.Interval(v, Aggregation.Mean, seed: 5);
        Assert.Equal(a, b);
        Assert.True(a.Low < a.Value && a.Value < a.High, a.ToString());
        Assert.Equal(v.Average(x => x.Value), a.Value, 12);
    }

    [Fact]
    public void SeedsThatDisagreeWidenTheInterval()
    {
        // Same prompts; in one case the training seeds agree, in the other each seed shifts every value.
        var agree = Values(30, new long[] { 0, 1, 2 }, (p, _) => p % 2);
        var disagree = Values(30, new long[] { 0, 1, 2 }, (p, s) => p % 2 + s);
        var a = Bootstrap.Interval(agree, Aggregation.Mean);
        var d = Bootstrap.Interval(disagree, Aggregation.Mean);
        Assert.True(d.High - d.Low > 3 * (a.High - a.Low), $"{a} vs {d}");
    }

    [Fact]
    public void NaNValuesAreSkippedAndTheMedianHandlesInfinity()
    {
        var v = new List<BootstrapValue>
        {
            new(0, 0, double.NaN), new(1, 0, 30), new(2, 0, double.PositiveInfinity), new(3, 0, 40),
        };
        var e = Bootstrap.Interval(v, Aggregation.Median);
        Assert.Equal(3, e.Count);
        Assert.Equal(40, e.Value);
        Assert.Equal(double.NaN, Bootstrap.Interval(new[] { new BootstrapValue(0, 0, double.NaN) }, Aggregation.Mean).Value);
    }

    [Theory]
    [InlineData(new double[] { 1, 2, 3, 4 }, 0.5, 2.5)]
    [InlineData(new double[] { 1, 2, 3, 4 }, 0.0, 1)]
    [InlineData(new double[] { 1, 2, 3, 4 }, 1.0, 4)]
    [InlineData(new double[] { 0, 10 }, 0.25, 2.5)]
    public void QuantileInterpolatesLikeNumpy(double[] sorted, double q, double expected) =>
        Assert.Equal(expected, Bootstrap.Quantile(sorted, q), 12);
}
