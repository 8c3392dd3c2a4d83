using FocusNFix.Experiments;
using FocusNFix.Training;
using Xunit;

namespace FocusNFix.Tests.Experiments;

/// <summary>What <c>fnf demo</c> does with an earlier demo in its folder, and the order it trains in (training itself is the trainer's, replaced here by a recorder).</summary>
public class DemoRunTests : IDisposable
{
    readonly string _out = Directory.CreateTempSubdirectory("fnf-demo-run-").FullName;
    public void Dispose() => Directory.Delete(_out, true);

    static string Models => Path.Combine(Golden.Root, "models", "shapesworld");
    DemoPlan Plan() => new(Models, _out, "hazard", 60, 1);

    /// <summary>An earlier demo: draft finished (a final checkpoint and its LoRA files), global killed before its first checkpoint, a report; and a file of the user's.</summary>
    void EarlierOutputAndAUserFile(DemoPlan plan)
    {
        Directory.CreateDirectory(Path.Combine(plan.RunDir("draft"), "checkpoints", "step-60"));
        File.WriteAllText(Path.Combine(plan.RunDir("draft"), "config.json"), "{}");
        foreach (var f in new[] { FocusNFix.Lora.RunFolderLora.DiffusersName, FocusNFix.Lora.PeftAdapterConfig.FileName, FocusNFix.Lora.PeftAdapterConfig.WeightsName, FocusNFix.Lora.RunFolderLora.KohyaName })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(plan.RunDir("draft"), f))!);
            File.WriteAllText(Path.Combine(plan.RunDir("draft"), f), "");
        }
        Directory.CreateDirectory(plan.RunDir("global"));
        File.WriteAllText(Path.Combine(plan.RunDir("global"), "config.json"), "{}");
        File.WriteAllText(Path.Combine(_out, "report.json"), "{}");
        File.WriteAllText(Path.Combine(_out, "notes.txt"), "mine");
    }

    List<(string Method, string OutputDir, bool Resume)> TrainRecorded(DemoRun demo)
    {
        var calls = new List<(string, string, bool)>();
        demo.TrainMethods((cfg, resume) => { calls.Add((cfg.Objective, cfg.OutputDir, resume)); return cfg.OutputDir; });
        return calls;
    }

    [Fact]
    public void AFreshFolderTrainsTheThreeMethodsInOrderWithoutResuming()
    {
        var plan = Plan();
        File.WriteAllText(Path.Combine(_out, "notes.txt"), "mine");  // a folder with other things in it is fine
        var calls = TrainRecorded(new DemoRun(plan, EarlierOutput.Refuse));
        Assert.Equal(plan.Methods, calls.Select(c => c.Method));
        Assert.Equal(plan.Methods.Select(plan.RunDir), calls.Select(c => c.OutputDir));
        Assert.All(calls, c => Assert.False(c.Resume));
    }

    [Fact]
    public void ParallelJobsStartOneMethodPerOriginalsCacheTogetherAndTrainEveryMethodOnce()
    {
        var plan = new DemoPlan(Models, _out, "rot", null, 1);
        // draft builds the shared cache that global and focus-n-fix reuse; refl has its own.
        Assert.Equal(new[] { "draft", "refl", "global", "focus-n-fix" }, plan.TrainingOrder);
        using var bothFirstsRunning = new Barrier(2);
        var calls = new List<string>();
        new DemoRun(plan, EarlierOutput.Refuse).TrainMethods((cfg, resume) =>
        {
            var method = Path.GetFileName(cfg.OutputDir);
            lock (calls) calls.Add(method);
            // Sequential training would never get both first methods here at once.
            if (method is "draft" or "refl") Assert.True(bothFirstsRunning.SignalAndWait(TimeSpan.FromSeconds(10)), $"{method} waited alone");
            return cfg.OutputDir;
        }, jobs: 2);
        Assert.Equal(plan.Methods.OrderBy(m => m), calls.OrderBy(m => m));
        Assert.Equal(new[] { "draft", "refl" }, calls.Take(2).OrderBy(m => m == "refl"));
    }

    [Fact]
    public void AfterAFailedJobNoNewOneStartsAndTheFailureIsThrown()
    {
        var started = new List<string>();
        var e = Assert.Throws<InvalidInputException>(() => DemoRun.RunLanes(new[] { "a", "b", "c", "d" }, 1, item =>
        {
            lock (started) started.Add(item);
            if (item == "b") throw new InvalidInputException("b failed");
        }));
        Assert.Equal("b failed", e.Message);
        Assert.Equal(new[] { "a", "b" }, started);
        Assert.Throws<InvalidInputException>(() => new DemoRun(Plan(), EarlierOutput.Refuse).TrainMethods((c, r) => c.OutputDir, jobs: 0));
    }

    [Fact]
    public void TheRotDemoTrainsFourMethodsWithReflAsFocusNFixInItsOwnFolder()
    {
        var plan = new DemoPlan(Models, _out, "rot", null, 1);
        var calls = TrainRecorded(new DemoRun(plan, EarlierOutput.Refuse));
        Assert.Equal(new[] { "draft", "global", "focus-n-fix", "focus-n-fix" }, calls.Select(c => c.Method));
        Assert.Equal(new[] { "draft", "global", "focus-n-fix", "refl" }.Select(plan.RunDir), calls.Select(c => c.OutputDir));
        Assert.Contains(plan.ReflCacheDir, plan.OwnedPaths);
    }

    [Fact]
    public void AnEarlierOutputIsRefusedAndKept()
    {
        var plan = Plan();
        EarlierOutputAndAUserFile(plan);
        var e = Assert.Throws<InvalidInputException>(() => new DemoRun(plan, EarlierOutput.Refuse));
        Assert.Contains("--resume", e.Message);
        Assert.Contains("--overwrite", e.Message);
        Assert.True(Directory.Exists(Path.Combine(plan.RunDir("draft"), "checkpoints", "step-60")));
        Assert.True(File.Exists(Path.Combine(_out, "report.json")));
    }

    [Fact]
    public void ResumeKeepsFinishedRunsContinuesStartedOnesAndStartsTheOthers()
    {
        var plan = Plan();
        EarlierOutputAndAUserFile(plan);
        var calls = TrainRecorded(new DemoRun(plan, EarlierOutput.Resume));
        // draft is finished (not trained again); global was started (the trainer resumes it from step 0); focus-n-fix is new.
        Assert.Equal(new[] { ("global", true), ("focus-n-fix", false) }, calls.Select(c => (c.Method, c.Resume)));
        Assert.True(File.Exists(Path.Combine(plan.RunDir("global"), "config.json")));
        Assert.True(File.Exists(Path.Combine(_out, "report.json")));
    }

    [Fact]
    public void OverwriteDeletesTheDemosOwnFilesAndNothingElse()
    {
        var plan = Plan();
        EarlierOutputAndAUserFile(plan);
        var calls = TrainRecorded(new DemoRun(plan, EarlierOutput.Overwrite));
        Assert.All(calls, c => Assert.False(c.Resume));
        Assert.False(Directory.Exists(plan.RunDir("draft")));
        Assert.False(Directory.Exists(plan.RunDir("global")));
        Assert.False(File.Exists(Path.Combine(_out, "report.json")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(_out, "notes.txt")));
    }

    [Fact]
    public void TheReportNeedsTheTrainedMethods() =>
        Assert.Throws<InvalidOperationException>(() => new DemoRun(Plan(), EarlierOutput.Refuse).EvaluateAndReport("fnf demo"));

    [Theory]
    [InlineData(0, 1, "--steps 0")]
    [InlineData(60, 0, "--eval-seeds 0")]
    public void CountsBelowOneAreRefused(int steps, int seeds, string named) =>
        Assert.Contains(named, Assert.Throws<InvalidInputException>(() => new DemoPlan(Models, _out, "hazard", steps, seeds)).Message);

    [Fact]
    public void ATestPromptCountBelowOneIsRefused() =>
        Assert.Contains("--test-prompts 0: expected at least 1", Assert.Throws<InvalidInputException>(() => new DemoPlan(Models, _out, "rot", null, 1) { TestPrompts = 0 }).Message);
}
