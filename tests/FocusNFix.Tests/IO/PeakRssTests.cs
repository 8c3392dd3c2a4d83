using FocusNFix.IO;
using Xunit;

namespace FocusNFix.Tests.IO;

public class PeakRssTests
{
    [Theory]
    // The kernel's format ("%s\t%8lu kB"): short values are padded with spaces, 8-digit ones touch the tab.
    [InlineData("VmHWM:\t  123456 kB", 123456)]
    [InlineData("VmHWM:\t10574336 kB", 10574336)]
    [InlineData("VmRSS:\t123456789 kB", 123456789)]
    public void AStatusLineIsReadWhateverTheNumbersWidth(string line, long kib) => Assert.Equal(kib, PeakRss.StatusKiB(line));

    [Theory]
    [InlineData("VmHWM:")]
    [InlineData("VmHWM:\tkB")]
    [InlineData("VmHWM:\t-5 kB")]
    public void AMalformedStatusLineIsRefusedByContent(string line)
    {
        var e = Assert.Throws<FormatException>(() => PeakRss.StatusKiB(line));
        Assert.Contains(line, e.Message);
    }

    [Fact]
    public void ThisProcesssPeakIsReadFromProcSelfStatus()
    {
        if (!OperatingSystem.IsLinux()) return;
        Assert.True(PeakRss.PeakMiB() >= PeakRss.CurrentMiB() - 1 && PeakRss.CurrentMiB() > 10);
    }
}
