using FocusNFix.Distributed;
using Xunit;

namespace FocusNFix.Tests.Distributed;

public class DataShareTests
{
    [Theory]
    [InlineData(10, 3)]
    [InlineData(2, 3)]
    [InlineData(128, 2)]
    [InlineData(0, 4)]
    public void RangesAreDisjointAndCoverTheListInOrder(int total, int size)
    {
        var covered = new List<int>();
        for (int r = 0; r < size; r++)
        {
            var (start, count) = DataShare.Range(total, r, size);
            Assert.Equal(covered.Count, start);
            covered.AddRange(Enumerable.Range(start, count));
            foreach (var i in Enumerable.Range(start, count)) Assert.Equal(r, DataShare.Owner(i, total, size));
        }
        Assert.Equal(Enumerable.Range(0, total), covered);
        // Balanced: shares differ by at most one item.
        var counts = Enumerable.Range(0, size).Select(r => DataShare.Range(total, r, size).Count).ToList();
        Assert.True(counts.Max() - counts.Min() <= 1);
    }

    [Fact]
    public void BatchSharesAreEqualSlicesAndRefuseAnUnevenSplit()
    {
        var batch = new[] { 7, 3, 9, 1 };
        Assert.Equal(new[] { 7, 3 }, DataShare.Of(batch, 0, 2));
        Assert.Equal(new[] { 9, 1 }, DataShare.Of(batch, 1, 2));
        Assert.Equal(batch, DataShare.Of(batch, 0, 1));
        Assert.Throws<ArgumentException>(() => DataShare.Of(batch, 0, 3));
    }

    [Fact]
    public void WithoutALauncherTheJobIsThisProcessAloneAndNoMpiLoads()
    {
        // The suite runs without mpirun: no launcher variable is set, so nothing may load libmpi.
        Assert.Equal(1, MpiLaunch.LaunchedSize());
        Assert.Same(SingleProcess.Instance, MpiLaunch.World());
        var values = new[] { 1f, 2f };
        SingleProcess.Instance.AllReduceSum(values);
        Assert.Equal(new[] { 1f, 2f }, values);
    }
}
