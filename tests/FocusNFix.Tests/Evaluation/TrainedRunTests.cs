using FocusNFix.Evaluation;
using FocusNFix.Lora;
using FocusNFix.Training;
using Xunit;

namespace FocusNFix.Tests.Evaluation;

/// <summary>Reading run folders for <c>fnf eval --run</c>: what is taken, what is refused, when runs must agree.</summary>
public class TrainedRunTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-trained-run-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    // A run folder as the trainer leaves it: the resolved config, the log and a LoRA file (its content is not read here).
    string RunFolder(string name, Action<TrainingConfig>? edit = null, bool log = true, bool lora = true)
    {
        var dir = Path.Combine(_tmp, name);
        Directory.CreateDirectory(dir);
        var c = new TrainingConfig { Model = Golden.Case("pipeline_tiny_pixel"), OutputDir = dir, Objective = "draft" };
        c.Sampling.Steps = 3;
        c.Sampling.GuidanceScale = 2;
        edit?.Invoke(c);
        File.WriteAllText(Path.Combine(dir, "config.json"), c.ToJson());
        if (log) File.WriteAllText(Path.Combine(dir, FocusNFixTrainer.LogName), "");
        if (lora) File.WriteAllText(Path.Combine(dir, RunFolderLora.DiffusersName), "");
        return dir;
    }

    [Fact]
    public void OpenTakesTheConfigTheLoraAndTheLog()
    {
        var dir = RunFolder("a", c => c.Sampling.Scheduler = "euler");
        var run = TrainedRun.Open(dir);
        Assert.Equal("draft", run.Name);
        Assert.Equal("custom", TrainedRun.Open(dir, "custom").Name);
        Assert.Equal(Path.Combine(dir, RunFolderLora.DiffusersName), run.LoraPath);
        Assert.Equal(Path.Combine(dir, FocusNFixTrainer.LogName), run.LogPath);
        Assert.Equal(("euler", 3, 2.0), (run.Config.Sampling.Scheduler, run.Config.Sampling.Steps, run.Config.Sampling.GuidanceScale));
    }

    [Fact]
    public void OpenNamesWhatIsMissing()
    {
        Assert.Contains("training run folder not found", Assert.Throws<InvalidInputException>(() => TrainedRun.Open(Path.Combine(_tmp, "nope"))).Message);
        Directory.CreateDirectory(Path.Combine(_tmp, "empty"));
        Assert.Contains("config.json: not found", Assert.Throws<InvalidInputException>(() => TrainedRun.Open(Path.Combine(_tmp, "empty"))).Message);
        Assert.Contains("sampling.steps and sampling.guidance_scale are null",
            Assert.Throws<InvalidInputException>(() => TrainedRun.Open(RunFolder("unresolved", c => c.Sampling.Steps = null))).Message);
        Assert.Contains("folder not found", Assert.Throws<InvalidInputException>(() => TrainedRun.Open(RunFolder("no-model", c => c.Model = Path.Combine(_tmp, "gone")))).Message);
        Assert.Contains(FocusNFixTrainer.LogName, Assert.Throws<InvalidInputException>(() => TrainedRun.Open(RunFolder("no-log", log: false))).Message);
        Assert.Contains("holds no LoRA file", Assert.Throws<InvalidInputException>(() => TrainedRun.Open(RunFolder("no-lora", lora: false))).Message);
    }

    [Fact]
    public void RunsMustAgreeOnWhatTheEvaluationTakesFromThemUnlessItIsOverridden()
    {
        var a = TrainedRun.Open(RunFolder("a"));
        var sameButObjective = TrainedRun.Open(RunFolder("b", c => { c.Objective = "focus-n-fix"; c.Constraint.Lambda = 3; c.Device = "cuda"; }));
        TrainedRun.CheckAgree(new[] { a, sameButObjective }, new HashSet<string>());

        var moreSteps = TrainedRun.Open(RunFolder("c", c => { c.Objective = "global"; c.Sampling.Steps = 4; }));
        var e = Assert.Throws<InvalidInputException>(() => TrainedRun.CheckAgree(new[] { a, moreSteps }, new HashSet<string>()));
        Assert.Contains("sampling.steps = 4", e.Message);
        Assert.Contains("has 3", e.Message);
        TrainedRun.CheckAgree(new[] { a, moreSteps }, new HashSet<string> { "sampling.steps" });

        var otherMask = TrainedRun.Open(RunFolder("d", c => { c.Objective = "global"; c.Mask.DilatePixels = 0; }));
        Assert.Contains("mask =", Assert.Throws<InvalidInputException>(() => TrainedRun.CheckAgree(new[] { a, otherMask }, new HashSet<string>())).Message);

        var twin = TrainedRun.Open(RunFolder("e"));
        Assert.Contains("two runs are named 'draft'", Assert.Throws<InvalidInputException>(() => TrainedRun.CheckAgree(new[] { a, twin }, new HashSet<string>())).Message);
        TrainedRun.CheckAgree(new[] { a, TrainedRun.Open(twin.Dir, "draft-2") }, new HashSet<string>());
    }
}
