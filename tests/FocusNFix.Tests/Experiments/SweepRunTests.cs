using FocusNFix.Evaluation;
using FocusNFix.Experiments;
using Xunit;

namespace FocusNFix.Tests.Experiments;

/// <summary>What a sweep trains and evaluates, per shard (training itself is replaced by a recorder; evaluation is covered by SweepCliTests).</summary>
public class SweepRunTests : IDisposable
{
    readonly string _out = Directory.CreateTempSubdirectory("fnf-sweep-run-").FullName;
    public void Dispose() => Directory.Delete(_out, true);

    SweepConfig Config() => new()
    {
        Models = Path.Combine(Golden.Root, "models", "shapesworld"), OutputDir = _out, Concept = "a hazard mark", TrainSeeds = new() { 0, 1 },
        FocusNFix = new TrainedGrid { Lambdas = new() { 0.3, 1, 3 }, LearningRates = new() { 2e-3 } },
        Draft = new TrainedGrid { LearningRates = new() { 2e-3 } },
        NegativePrompt = new NegativePromptGrid { GuidanceScales = new() { 2 } },
    };

    static List<string> Recorded(SweepRun run)
    {
        var calls = new List<string>();
        run.TrainAll((cfg, _) => { calls.Add(cfg.OutputDir); return cfg.OutputDir; });
        return calls;
    }

    [Fact]
    public void ShardsTrainDisjointSettingsThatTogetherCoverTheGrid()
    {
        var plan = new SweepPlan(Config());
        var whole = Recorded(new SweepRun(plan, EarlierOutput.Refuse));
        Assert.Equal(4 * 2, whole.Count);
        var shards = Enumerable.Range(0, 3).Select(i => Recorded(new SweepRun(plan, EarlierOutput.Refuse, new EvalShard(i, 3)))).ToList();
        Assert.Equal(whole.OrderBy(x => x), shards.SelectMany(x => x).OrderBy(x => x));
        for (int i = 0; i < 3; i++)
            for (int j = i + 1; j < 3; j++) Assert.Empty(shards[i].Intersect(shards[j]));
        // Both seeds of a setting go to the same shard: its evaluation needs them all.
        Assert.All(shards, s => Assert.Equal(0, s.Count % 2));
    }

    [Fact]
    public void AShardEvaluatesOnlyItsOwnSettings()
    {
        var plan = new SweepPlan(Config());
        // Nothing is trained: shard 1/5 owns only the second lambda's setting and names it; shard 4/5 owns the sampling
        // unit (index 4 = after the 4 trained settings) and no trained setting, so its first error is not about a LoRA.
        var e = Assert.Throws<InvalidInputException>(() => new SweepRun(plan, EarlierOutput.Refuse, new EvalShard(1, 5)).EvaluateAll());
        Assert.Contains("focus-n-fix_lambda1_lr0.002", e.Message);
        var run = new SweepRun(plan, EarlierOutput.Refuse, new EvalShard(4, 5));
        Assert.All(plan.Settings, s => Assert.Equal(!s.Trained, run.Mine(s)));
    }

    [Fact]
    public void AShardNeverOverwrites()
    {
        var e = Assert.Throws<InvalidInputException>(() => new SweepRun(new SweepPlan(Config()), EarlierOutput.Overwrite, new EvalShard(0, 2)));
        Assert.Contains("--overwrite", e.Message);
    }

    [Fact]
    public void ASweepOnAnotherSweepsRunsNeedsOnlyTheirFinalLoraAndNeverTrains()
    {
        var runs = Path.Combine(_out, "val-runs");
        var config = Config();
        config.OutputDir = Path.Combine(_out, "test");
        config.Split = "test";
        config.RunsFrom = runs;
        var plan = new SweepPlan(config);
        var trained = plan.Settings.Where(s => s.Trained).SelectMany(s => config.TrainSeeds.Select(seed => plan.RunDir(s, seed))).ToList();
        // A results folder keeps only the LoRA the evaluation reads (with config and log): enough.
        foreach (var dir in trained)
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, FocusNFix.Training.FocusNFixTrainer.FinalPeftName), "");
        }
        Assert.Empty(Recorded(new SweepRun(plan, EarlierOutput.Refuse)));
        // One without it is not trained into the other sweep's folder: refused by name.
        File.Delete(Path.Combine(trained[^1], FocusNFix.Training.FocusNFixTrainer.FinalPeftName));
        var e = Assert.Throws<InvalidInputException>(() => Recorded(new SweepRun(plan, EarlierOutput.Resume)));
        Assert.Contains(trained[^1], e.Message);
        Assert.Contains("runs_from", e.Message);
    }
}
