namespace FocusNFix.Distributed;

/// <summary>
/// Which part of a list each member of a job takes: contiguous, disjoint, the same answer on every member, and
/// together the whole list in its order.
/// </summary>
public static class DataShare
{
    /// <summary>Rank <paramref name="rank"/>'s [start, start + count) of <paramref name="total"/> items; the first total % size ranks take one more.</summary>
    public static (int Start, int Count) Range(int total, int rank, int size)
    {
        if (size < 1 || rank < 0 || rank >= size) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} of {size}");
        int baseCount = total / size, extra = total % size;
        int start = rank * baseCount + Math.Min(rank, extra);
        return (start, baseCount + (rank < extra ? 1 : 0));
    }

    /// <summary>The rank whose <see cref="Range"/> holds item <paramref name="index"/>.</summary>
    public static int Owner(int index, int total, int size)
    {
        for (int r = 0; r < size; r++)
        {
            var (start, count) = Range(total, r, size);
            if (index >= start && index < start + count) return r;
        }
        throw new ArgumentOutOfRangeException(nameof(index), $"item {index} of {total}");
    }

    /// <summary>Rank <paramref name="rank"/>'s equal share of a batch whose length <paramref name="size"/> divides.</summary>
    public static IReadOnlyList<T> Of<T>(IReadOnlyList<T> batch, int rank, int size)
    {
        if (batch.Count % size != 0)
            throw new ArgumentException($"a batch of {batch.Count} cannot be split equally over {size} processes");
        var (start, count) = Range(batch.Count, rank, size);
        return batch.Skip(start).Take(count).ToList();
    }
}
