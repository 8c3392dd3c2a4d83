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

    /// <summary>LoRA files for the plan's methods, each with its own non-zero lora_B so the methods sample differently.</summary>
    static void WriteLoras(DemoPlan plan)
    {
        using var pipe = FocusNFix.Pipelines.TextToImagePipeline.Load(plan.BaseModel);
        int k = 0;
        foreach (var method in plan.Methods)
        {
            var lora = FocusNFix.Lora.LoraNetwork.Attach(pipe.Unet, new FocusNFix.Lora.LoraConfig { Rank = 2, Alpha = 2 });
            using (TorchSharp.torch.no_grad())
                foreach (var (name, p) in lora.named_parameters())
                    if (name.Contains("lora_B")) p.copy_(TorchSharp.torch.randn(p.shape, generator: new TorchSharp.torch.Generator((ulong)++k)) * 0.2);
            var dir = plan.RunDir(method);
            Directory.CreateDirectory(dir);
            lora.Save(Path.Combine(dir, FocusNFixTrainer.FinalPeftName), FocusNFix.Lora.LoraFormat.Diffusers);
            File.WriteAllText(Path.Combine(dir, FocusNFixTrainer.LogName), "");
            lora.Detach();
            lora.Dispose();
        }
    }

    static List<string> Figures(FocusNFix.Evaluation.EvaluationResult r) =>
        r.Images.Select(i => $"{i.Method} {i.PromptIndex} {i.Seed} {i.ImagePath} " + string.Join(",", i.Metrics.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}={kv.Value:R}"))).ToList();

    [Fact]
    [Trait("Category", "Slow")]
    public void TheEvaluationInPartsGivesTheFiguresAndPicturesOfOneProcess()
    {
        // Two test prompts, two parts: one image each, so the whole evaluation is compared at the parts' batch of 1.
        var plan = new DemoPlan(Models, Path.Combine(_out, "parts"), "hazard", 1, 1) { TestPrompts = 2 };
        WriteLoras(plan);
        Assert.Equal(1, plan.ShardBatchSize(2));
        var demo = new DemoRun(plan, EarlierOutput.Resume);
        demo.TrainMethods((cfg, _) => cfg.OutputDir);
        var gate = new object();
        var parts = new List<string>();
        // The CLI runs each part in its own process; here they take turns in this one (torch's state is process-wide).
        var merged = demo.EvaluateShardsAndReport("fnf demo", 2, shard => { lock (gate) { parts.Add(shard.ToString()); demo.EvaluateShard(shard); } });
        Assert.Equal(new[] { "0/2", "1/2" }, parts.OrderBy(p => p));
        Assert.False(Directory.Exists(plan.EvalShardsDir));
        Assert.True(File.Exists(Path.Combine(plan.OutDir, DemoPlan.PromptsFile)));

        var wholePlan = new DemoPlan(Models, Path.Combine(_out, "whole"), "hazard", 1, 1) { TestPrompts = 2 };
        var loras = plan.Methods.Select(m => (m, Path.Combine(plan.RunDir(m), FocusNFixTrainer.FinalPeftName))).ToList();
        var logs = plan.Methods.ToDictionary(m => m, m => Path.Combine(plan.RunDir(m), FocusNFixTrainer.LogName));
        var whole = wholePlan.Evaluate(loras, logs, null, batchSize: 1);

        Assert.Equal(4 * 2, merged.Images.Count);  // base + 3 methods, 2 images each
        Assert.Equal(Figures(whole), Figures(merged));
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(whole.Summaries, FocusNFix.Evaluation.EvaluationResult.JsonOptions), System.Text.Json.JsonSerializer.Serialize(merged.Summaries, FocusNFix.Evaluation.EvaluationResult.JsonOptions));
        Assert.NotEqual(merged.Images[0].Metrics["reward_hazard"], merged.Images[2].Metrics["reward_hazard"]);  // base vs a LoRA: they differ
        foreach (var image in merged.Images)
            Assert.Equal(File.ReadAllBytes(Path.Combine(wholePlan.OutDir, image.ImagePath)), File.ReadAllBytes(Path.Combine(plan.OutDir, image.ImagePath)));
        Assert.Equal("fnf demo", merged.Notes["command"]);
        Assert.True(File.Exists(Path.Combine(plan.OutDir, "report.json")));
    }
}
