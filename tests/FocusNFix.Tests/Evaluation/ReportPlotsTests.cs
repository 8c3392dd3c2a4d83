using FocusNFix.Evaluation;
using Xunit;

namespace FocusNFix.Tests.Evaluation;

public class ReportPlotsTests
{
    [Fact]
    public void BarAxisAlwaysIncludesZeroWithRoomForLabelsOnTheSidesThatHaveBars()
    {
        // All negative (rewards that are minus a defect area): the axis ends at 0, where the bars start.
        var (bottom, top) = ReportPlots.BarValueRange([-0.9133, -0.1968, -0.6338]);
        Assert.Equal(0, top);
        Assert.Equal(-0.9133 - 0.15 * 0.9133, bottom, 9);
        // All positive.
        (bottom, top) = ReportPlots.BarValueRange([0.5, 1.0]);
        Assert.Equal((0.0, 1.15), (bottom, top));
        // Mixed: room on both sides.
        (bottom, top) = ReportPlots.BarValueRange([-1.0, 1.0]);
        Assert.Equal((-1.3, 1.3), (Math.Round(bottom, 9), Math.Round(top, 9)));
        // Non-finite values (the PSNR of an unchanged image) are ignored; nothing finite or all zero gives [0, 1].
        Assert.Equal((0.0, 1.15 * 40), ReportPlots.BarValueRange([40, double.PositiveInfinity, double.NaN]));
        Assert.Equal((0.0, 1.0), ReportPlots.BarValueRange([0, 0]));
        Assert.Equal((0.0, 1.0), ReportPlots.BarValueRange([double.NaN]));
    }
}
