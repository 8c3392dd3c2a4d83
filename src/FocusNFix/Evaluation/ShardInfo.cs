using System.Text.Json;
using FocusNFix.IO;

namespace FocusNFix.Evaluation;

/// <summary>One picture row a shard offers the merge: its job's position in the whole run and whether its mask is non-empty.</summary>
public sealed class ShardRow
{
    public int Position { get; set; }
    public bool MaskNonEmpty { get; set; }
    /// <summary>The row's <see cref="PictureRowChoice.Spread"/> (0 in a shard.json written before rows were chosen by it).</summary>
    public double Spread { get; set; }
    public PictureRow Row { get; set; } = new();
}

/// <summary>
/// shard.json, written beside a shard's report: which shard it is, how the jobs were cut, and the picture rows it
/// offers (its own best <see cref="EvalSetup.PictureRows"/>: the whole run's rows are among the shards' offers, because
/// rows are chosen by one total order, <see cref="PictureRowChoice"/>). <c>fnf eval merge</c> reads it.
/// </summary>
public sealed class ShardInfo
{
    public const string FileName = "shard.json";
    public int FormatVersion { get; set; } = 1;
    public int Index { get; set; }
    public int Count { get; set; }
    public int BatchSize { get; set; }
    public int PictureRows { get; set; }
    /// <summary>Jobs (prompts x seeds) of the whole run.</summary>
    public int TotalJobs { get; set; }
    /// <summary>Positions of this shard's jobs in the whole run, in order.</summary>
    public List<int> Positions { get; set; } = new();
    public List<ShardRow> Rows { get; set; } = new();

    public void Save(string dir) => AtomicFile.WriteAllText(Path.Combine(dir, FileName), JsonSerializer.Serialize(this, EvaluationResult.JsonOptions) + "\n");

    public static ShardInfo Load(string dir)
    {
        var path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) throw new InvalidInputException($"{path}: no such file: expected the output folder of fnf eval --shard i/n");
        ShardInfo? info;
        try { info = JsonSerializer.Deserialize<ShardInfo>(InputFile.ReadAllText(path, "shard description"), EvaluationResult.JsonOptions); }
        catch (JsonException e) { throw new InvalidInputException($"{path}: not a valid shard description ({e.Message})"); }
        if (info is null || info.Count < 1 || info.Index < 0 || info.Index >= info.Count || info.BatchSize < 1 || info.Positions is null || info.Rows is null)
            throw new InvalidInputException($"{path}: not a valid shard description (expected index 0 <= i < count, batch_size >= 1, positions, rows)");
        return info;
    }
}
