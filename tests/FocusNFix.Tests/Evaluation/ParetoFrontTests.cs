using FocusNFix.Evaluation;
using Xunit;

namespace FocusNFix.Tests.Evaluation;

public class ParetoFrontTests
{
    [Fact]
    public void DominatedPointsAreLeftOffAndTheFrontIsOrderedByTheMaximisedFigure()
    {
        // (defect rate, PSNR): 1 dominates 3 (lower rate, higher PSNR); 0, 1 and 2 trade off.
        var pts = new List<(double, double)> { (0.02, 30), (0.10, 40), (0.30, 45), (0.20, 35), (0.30, 44) };
        Assert.Equal(new[] { 0, 1, 2 }, ParetoFront.Of(pts));
    }

    [Fact]
    public void EqualPointsAreBothOnTheFrontAndNaNNever()
    {
        var pts = new List<(double, double)> { (0.1, 40), (0.1, 40), (double.NaN, 99), (0.0, double.NaN) };
        Assert.Equal(new[] { 0, 1 }, ParetoFront.Of(pts));
    }

    [Fact]
    public void APointBetterInOneFigureAndEqualInTheOtherDominates()
    {
        var pts = new List<(double, double)> { (0.1, 40), (0.1, 41), (0.05, 41) };
        Assert.Equal(new[] { 2 }, ParetoFront.Of(pts));
    }
}
