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
        NegativePrompt = new NegativePromptGrid { GuidanceScales = new() { 2, 3 } },
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
        // Nothing is trained: shard 1/6 owns only the second lambda's setting and names it.
        var e = Assert.Throws<InvalidInputException>(() => new SweepRun(plan, EarlierOutput.Refuse, new EvalShard(1, 6)).EvaluateAll());
        Assert.Contains("focus-n-fix_lambda1_lr0.002", e.Message);
        // Each training-free setting is a unit of its own after the 4 trained ones (units 4 and 5), so shards 4/6 and
        // 5/6 own one negative-prompt setting each and no trained setting.
        var variants = plan.Settings.Where(s => !s.Trained).ToList();
        Assert.Equal(2, variants.Count);
        for (int k = 0; k < 2; k++)
        {
            var run = new SweepRun(plan, EarlierOutput.Refuse, new EvalShard(4 + k, 6));
            Assert.Equal(new[] { variants[k] }, plan.Settings.Where(run.Mine));
        }
        // Every setting belongs to exactly one shard, for any shard count.
        foreach (int n in new[] { 1, 2, 3, 7 })
            Assert.All(plan.Settings, s => Assert.Single(Enumerable.Range(0, n), i => new SweepRun(plan, EarlierOutput.Resume, new EvalShard(i, n)).Mine(s)));
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
