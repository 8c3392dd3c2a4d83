using System.Globalization;

namespace FocusNFix.Evaluation;

/// <summary>
/// Which part of an evaluation's prompts x seeds one process evaluates (<c>fnf eval --shard i/n</c>): the jobs are cut
/// into the batches an unsharded run samples (<see cref="EvalSetup.BatchSize"/> jobs each, in order) and shard i takes
/// batches i, i + n, i + 2n, ... Each image is then sampled and scored in exactly the batch it has in an unsharded run,
/// so merged shards give the unsharded figures bit for bit.
/// </summary>
public sealed record EvalShard(int Index, int Count)
{
    public static readonly EvalShard Whole = new(0, 1);

    public bool IsWhole => Count == 1;

    /// <summary>Parses "i/n" (0 &lt;= i &lt; n); <paramref name="source"/> names the value in errors.</summary>
    public static EvalShard Parse(string text, string source = "--shard")
    {
        var parts = text.Split('/');
        if (parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            && n >= 1 && i < n)
            return new EvalShard(i, n);
        throw new InvalidInputException($"{source} '{text}': expected i/n with 0 <= i < n (e.g. 0/3, 1/3, 2/3)");
    }

    /// <summary>The positions (in the whole job list of <paramref name="total"/>) this shard evaluates, in order.</summary>
    public List<int> Positions(int total, int batchSize)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize));
        var mine = new List<int>();
        for (int batch = Index, start = Index * batchSize; start < total; batch += Count, start = batch * batchSize)
            for (int k = start; k < Math.Min(total, start + batchSize); k++) mine.Add(k);
        return mine;
    }

    public override string ToString() => $"{Index}/{Count}";
}
