using FocusNFix.Cli;
using Xunit;

namespace FocusNFix.Tests.Cli;

public sealed class ProgressTests
{
    [Fact]
    public void PlainLinesTimeEachPassFromItsOwnStart()
    {
        // A sweep's evaluation counts each setting's images from 0 again: the second pass's line must show its own 5 s,
        // not the 105 s since the bar began.
        var now = new DateTime(2026, 12, 3, 0, 0, 0, DateTimeKind.Utc);
        var output = new StringWriter();
        var report = Progress.PlainLines("evaluating", output, () => now);
        now = now.AddSeconds(100);
        report(10, 10, "first");
        report(0, 10, "second");
        now = now.AddSeconds(5);
        report(10, 10, "second");
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(new[]
        {
            "evaluating: 10/10 (100%, 100.0s, 10.00 s/it), first",
            "evaluating: 10/10 (100%, 5.0s, 2.00 it/s), second",
        }, lines);
    }
}
