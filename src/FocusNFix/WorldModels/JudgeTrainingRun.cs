using FocusNFix.IO;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;

namespace FocusNFix.WorldModels;

/// <summary>
/// <c>fnf world train-judge</c>: trains the alignment judge on rendered scenes, measures it on rendered test-split
/// scenes and writes the model folder with its card. An occupied output is refused before training.
/// </summary>
public static class JudgeTrainingRun
{
    public sealed record Options
    {
        public string OutDir { get; init; } = Path.Combine(WorldFolder.DefaultOut, "judge");
        /// <summary>world.json; null: <see cref="WorldFolder.LoadWorld"/>'s default.</summary>
        public string? WorldPath { get; init; }
        public int Steps { get; init; } = 1500;
        public long Seed { get; init; }
        public string LogDir { get; init; } = "runs/world-judge";
        public bool Overwrite { get; init; }
        public string CommandLine { get; init; } = "fnf world train-judge";
    }

    /// <summary>The files a judge folder holds: weights, its world, config and card.</summary>
    public static string[] Files(string dir) => new[]
    {
        Path.Combine(dir, AlignmentJudge.WeightsBase + ".safetensors"), Path.Combine(dir, WorldSpec.FileName),
        Path.Combine(dir, AlignmentJudge.ConfigFile), Path.Combine(dir, ModelCards.FileName),
    };

    public sealed record Result(string ModelDir, string Card);

    /// <param name="progress">(phase, done, total, status).</param>
    public static Result Run(Options o, Action<string, int, int, string?>? progress = null)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        if (o.Steps < 1) throw new InvalidInputException($"--steps {o.Steps}: expected at least 1");
        OutputPaths.RefuseExisting(Files(o.OutDir), o.Overwrite);
        var w = WorldFolder.LoadWorld(o.WorldPath);
        var options = new JudgeTraining.Options(Steps: o.Steps, Seed: o.Seed);
        using var log = new TensorBoardLog(o.LogDir);
        using var judge = JudgeTraining.Train(w, options, (s, t, loss) => progress?.Invoke("training the judge", s, t, $"loss {loss:F4}"), log);
        var eval = JudgeTraining.Evaluate(judge, w, Split.Test, 1000);
        judge.SavePretrained(o.OutDir);
        var card = ModelCards.Judge(o.CommandLine, options, clock.Elapsed, eval);
        AtomicFile.WriteAllText(Path.Combine(o.OutDir, ModelCards.FileName), card);
        return new Result(o.OutDir, card);
    }
}
