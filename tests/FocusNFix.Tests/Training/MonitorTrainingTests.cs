using System.Text.Json;
using FocusNFix.IO;
using FocusNFix.Rewards;
using FocusNFix.Tests.Rewards;
using FocusNFix.Training;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

/// <summary>A guard that falls as the red reward rises: the mean of the green and blue channels.</summary>
sealed class NotRedGuard : IReward
{
    public string Name => "not_red";
    public void To(Device device) { }
    public Tensor Score(Tensor images, IReadOnlyList<string> prompts) => images[.., 1..].mean(new long[] { 1, 2, 3 });
}

/// <summary>train.monitor in the trainer: a fixed validation set, the hacking flag, stop-on-hacking keeping the best LoRA, resume.</summary>
public class MonitorTrainingTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-monitor-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    static readonly IHeatmapSource TopHalf = FunctionHeatmap.TopHalf();

    TrainingConfig Config(string name, bool stop, double margin, int steps = 6)
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\na blue square in the center on a gray background\n");
        return new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"),
            Objective = "draft",
            OutputDir = Path.Combine(_tmp, name),
            Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 1, Limit = null },
            Sampling = new SamplingConfig { Steps = 4, GuidanceScale = 2.0 },
            Draft = new DraftConfig { K = 2 },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Optimizer = new OptimizerConfig { LearningRate = 5e-2, WarmupSteps = 1 },
            Train = new TrainLoopConfig
            {
                Steps = steps, BatchSize = 2, CheckpointEvery = 2, SampleEvery = 0, StopOnHacking = stop,
                Monitor = new MonitorConfig { Every = 2, PromptsFile = prompts, Seeds = new() { 7, 8 }, GuardMargin = margin },
            },
        };
    }

    static JsonElement MonitorFile(string runDir) => JsonDocument.Parse(File.ReadAllText(Path.Combine(runDir, FocusNFixTrainer.MonitorName))).RootElement;

    [Fact]
    public void HackingIsFlaggedAndStopOnHackingKeepsTheBestGuardedLora()
    {
        using var trainer = new FocusNFixTrainer(Config("stop", stop: true, margin: 1e-4), reward: new RedReward(), heatmapOverride: TopHalf, guardsOverride: new[] { new NotRedGuard() });
        var log = trainer.Train();
        var m = MonitorFile(trainer.RunDir);
        var evals = m.GetProperty("evaluations").EnumerateArray().ToList();
        Assert.True(m.GetProperty("first_flag").ValueKind == JsonValueKind.Object, m.ToString());
        int stoppedAt = m.GetProperty("stopped_at").GetInt32();
        Assert.Equal(m.GetProperty("first_flag").GetProperty("step").GetInt32(), stoppedAt);
        Assert.Equal(evals[^1].GetProperty("step").GetInt32(), stoppedAt);
        Assert.Equal(stoppedAt, log.Count);  // the evaluation at step s comes before training step s
        Assert.True(evals[^1].GetProperty("target_reward").GetDouble() > evals[0].GetProperty("target_reward").GetDouble());
        // The monitor's cost: each evaluation's wall time, and a file written before it was recorded still reads.
        Assert.All(evals, e => Assert.True(e.GetProperty("seconds").GetDouble() > 0, e.ToString()));
        var legacy = Path.Combine(_tmp, "legacy-monitor.json");
        File.WriteAllText(legacy, "{\"evaluations\": [{\"step\": 0, \"target_reward\": -1, \"guards\": {}, \"psnr_outside\": 30}], \"first_flag\": null, \"best_unflagged_step\": 0, \"stopped_at\": null, \"lora_step\": null, \"images\": 4}");
        Assert.Equal(0, FocusNFix.Training.MonitorFile.Read(legacy).Evaluations[0].Seconds);
        // The kept LoRA is the best unflagged evaluation's: the zero LoRA at step 0, else that step's checkpoint.
        int kept = m.GetProperty("lora_step").GetInt32();
        Assert.Equal(m.GetProperty("best_unflagged_step").GetInt32(), kept);
        Assert.True(kept < stoppedAt);
        var final = Safetensors.Load(Path.Combine(trainer.RunDir, "checkpoints", $"step-{6:D6}", "lora_state.safetensors"));
        if (kept == 0)
            Assert.All(final.Where(kv => kv.Key.Contains("lora_B")), kv => Assert.Equal(0f, kv.Value.abs().max().item<float>()));
        else
        {
            var atKept = Safetensors.Load(Path.Combine(trainer.RunDir, "checkpoints", $"step-{kept:D6}", "lora_state.safetensors"));
            Assert.All(final, kv => Assert.Equal(0f, (kv.Value - atKept[kv.Key]).abs().max().item<float>()));
        }
        Assert.True(RunFolder.IsFinished(trainer.RunDir));

        // The report reads monitor.json beside the log: the flag with its reason, the kept checkpoint, a plot per value.
        var curve = FocusNFix.Evaluation.Evaluator.CurveFromLog("draft", Path.Combine(trainer.RunDir, FocusNFixTrainer.LogName));
        Assert.DoesNotContain(curve.Points, p => p.Values.ContainsKey("lambda"));  // draft's fixed lambda 0 is not drawn
        var trace = Assert.IsType<FocusNFix.Evaluation.MonitorTrace>(curve.Monitor);
        Assert.Equal((stoppedAt, stoppedAt, kept), (trace.FlagStep, trace.StoppedAt, trace.LoraStep));
        Assert.Equal(evals.Select(e => e.GetProperty("step").GetInt32()), trace.Evaluations.Select(e => e.Step));
        Assert.Equal(PreservationBudget.PsnrCeiling, trace.Evaluations[0].Values["monitor_psnr_outside_mask"]);
        Assert.Equal(evals[^1].GetProperty("guards").GetProperty("not_red").GetDouble(), trace.Evaluations[^1].Values["monitor_guard_not_red"]);
        var reportDir = Path.Combine(_tmp, "report");
        FocusNFix.Evaluation.ReportWriter.Write(new FocusNFix.Evaluation.EvaluationResult { Title = "monitor", Methods = { "draft" }, Curves = { curve } }, reportDir);
        var md = File.ReadAllText(Path.Combine(reportDir, "report.md"));
        Assert.Contains($"- draft: {evals.Count} evaluation(s) (steps 0–{stoppedAt}); first flagged at step {stoppedAt}: not_red fell", md);
        Assert.Contains($"stopped at step {stoppedAt}, keeping the LoRA of step {kept}.", md);
        foreach (var png in new[] { "monitor_target_reward.png", "monitor_guard_not_red.png", "monitor_psnr_outside_mask.png" })
            Assert.True(File.Exists(Path.Combine(reportDir, "plots", png)), png + " not among " + string.Join(", ", Directory.GetFiles(Path.Combine(reportDir, "plots")).Select(Path.GetFileName)));
        Assert.Contains("<h2 id=\"monitor\">Reward-hacking monitor</h2>", File.ReadAllText(Path.Combine(reportDir, "report.html")));
    }

    [Fact]
    public void AMonitorFileThatIsNotOneIsRefusedByName()
    {
        var path = Path.Combine(_tmp, FocusNFixTrainer.MonitorName);
        File.WriteAllText(path, "{\"evaluations\": 3}");
        var e = Assert.Throws<InvalidInputException>(() => FocusNFix.Evaluation.Evaluator.ReadMonitor(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("evaluations = 3: expected a list of objects", e.Message);
        File.WriteAllText(path, "{\"evaluations\": [{\"step\": 0, \"target_reward\": \"high\"}]}");
        Assert.Contains("evaluations[0].target_reward = \"high\": expected a number", Assert.Throws<InvalidInputException>(() => FocusNFix.Evaluation.Evaluator.ReadMonitor(path)).Message);
        File.WriteAllText(path, "{\"first_flag\": null}");
        Assert.Contains("no \"evaluations\"", Assert.Throws<InvalidInputException>(() => FocusNFix.Evaluation.Evaluator.ReadMonitor(path)).Message);
        File.WriteAllText(path, "{\"evaluations\": [], \"flagged\": true}");
        Assert.Contains("unknown key 'flagged'", Assert.Throws<InvalidInputException>(() => FocusNFix.Evaluation.Evaluator.ReadMonitor(path)).Message);
    }

    [Fact]
    public void AWideMarginNeverFlagsAndTheValidationSetIsTheSameEveryTime()
    {
        using var trainer = new FocusNFixTrainer(Config("wide", stop: true, margin: 10), reward: new RedReward(), heatmapOverride: TopHalf, guardsOverride: new[] { new NotRedGuard() });
        var log = trainer.Train();
        Assert.Equal(6, log.Count);
        var m = MonitorFile(trainer.RunDir);
        Assert.Equal(JsonValueKind.Null, m.GetProperty("first_flag").ValueKind);
        Assert.Equal(new[] { 0, 2, 4, 6 }, m.GetProperty("evaluations").EnumerateArray().Select(e => e.GetProperty("step").GetInt32()));
        // Step 0 is the base model: the validation images are its own base images.
        Assert.Equal("Infinity", m.GetProperty("evaluations")[0].GetProperty("psnr_outside").ToString());
    }

    [Fact]
    public void ResumeRestoresTheMonitorAndEndsLikeTheUninterruptedRun()
    {
        using (var full = new FocusNFixTrainer(Config("full", false, 10), reward: new RedReward(), heatmapOverride: TopHalf, guardsOverride: new[] { new NotRedGuard() })) full.Train();
        using (var first = new FocusNFixTrainer(Config("resumed", false, 10), reward: new RedReward(), heatmapOverride: TopHalf, guardsOverride: new[] { new NotRedGuard() })) first.Train(stopAfter: 3);
        using (var second = new FocusNFixTrainer(Config("resumed", false, 10), resume: true, reward: new RedReward(), heatmapOverride: TopHalf, guardsOverride: new[] { new NotRedGuard() }))
            second.Train();
        // Everything but each evaluation's wall time.
        static string WithoutTimes(string runDir) => string.Join("\n", MonitorFile(runDir).GetProperty("evaluations").EnumerateArray()
            .Select(e => string.Join(",", e.EnumerateObject().Where(p => p.Name != "seconds").Select(p => $"{p.Name}={p.Value}"))));
        Assert.Equal(WithoutTimes(Path.Combine(_tmp, "full")), WithoutTimes(Path.Combine(_tmp, "resumed")));
    }

    [Fact]
    public void ABudgetCalibratedOnTheMonitorMovesItsTargetByTheHeldOutOffsetAndResumesExactly()
    {
        TrainingConfig Calibrated(string name)
        {
            var c = Config(name, stop: false, margin: 10);
            c.Objective = "focus-n-fix";
            c.Constraint = new ConstraintConfig { Lambda = 0.5, Budget = new BudgetConfig { MinPsnrOutside = 60, StepSize = 0.2, Smoothing = 2, CalibrateOnMonitor = true } };
            return c;
        }
        string reading;
        using (var full = new FocusNFixTrainer(Calibrated("cal-full"), reward: new RedReward(), heatmapOverride: TopHalf, guardsOverride: new[] { new NotRedGuard() }))
        {
            full.Train();
            reading = full.BudgetReading!;
            var lambdaFile = JsonDocument.Parse(File.ReadAllText(Path.Combine(full.RunDir, RunFolder.LambdaName))).RootElement;
            Assert.Equal(reading, lambdaFile.GetProperty("reading").GetString());
            var psnrs = MonitorFile(full.RunDir).GetProperty("evaluations").EnumerateArray().Select(e => e.GetProperty("psnr_outside").ToString()).ToList();
            Assert.Contains(psnrs.Skip(1), p => p != "Infinity");   // the LoRA moved the held-out images, so there was something to calibrate on
            Assert.Contains("held-out images measured", reading);
        }
        using (var first = new FocusNFixTrainer(Calibrated("cal-resumed"), reward: new RedReward(), heatmapOverride: TopHalf, guardsOverride: new[] { new NotRedGuard() })) first.Train(stopAfter: 5);
        using (var second = new FocusNFixTrainer(Calibrated("cal-resumed"), resume: true, reward: new RedReward(), heatmapOverride: TopHalf, guardsOverride: new[] { new NotRedGuard() }))
        {
            second.Train();
            Assert.Equal(reading, second.BudgetReading);
        }
        var fullLambdas = JsonlLog.Read<TrainStepLog>(Path.Combine(_tmp, "cal-full", FocusNFixTrainer.LogName)).Select(e => e.Lambda);
        var resumed = JsonlLog.Read<TrainStepLog>(Path.Combine(_tmp, "cal-resumed", FocusNFixTrainer.LogName)).Select(e => e.Lambda);
        Assert.Equal(fullLambdas, resumed);
    }

    [Fact]
    public void CalibrationWithoutAMonitorIsRefusedByName()
    {
        var c = Config("no-monitor", stop: false, margin: 10);
        c.Objective = "focus-n-fix";
        c.Train.Monitor = null;
        c.Constraint = new ConstraintConfig { Budget = new BudgetConfig { CalibrateOnMonitor = true } };
        var e = Assert.Throws<InvalidInputException>(() => c.Validate("cfg.json"));
        Assert.Contains("constraint.budget.calibrate_on_monitor", e.Message);
        Assert.Contains("train.monitor", e.Message);
    }

    [Fact]
    public void ACalibratedRunThatStopsOnHackingNeedsAPsnrFloorUnderTheBudget()
    {
        var c = Config("calibrated-stop", stop: true, margin: 10);
        c.Objective = "focus-n-fix";
        c.Constraint = new ConstraintConfig { Budget = new BudgetConfig { MinPsnrOutside = 35, CalibrateOnMonitor = true } };
        var e = Assert.Throws<InvalidInputException>(() => c.Validate("cfg.json"));
        Assert.Contains("train.monitor.min_psnr_outside", e.Message);
        Assert.Contains("35 dB", e.Message);
        c.Train.Monitor!.MinPsnrOutside = 32;
        c.Validate("cfg.json");
        c.Train.Monitor.MinPsnrOutside = null;
        c.Train.StopOnHacking = false;    // flags are only reported: nothing stops
        c.Validate("cfg.json");
    }

    [Fact]
    public void ABudgetedRunTheMonitorStopsWritesTheLambdaOfTheLoraItKept()
    {
        var c = Config("budget-stop", stop: true, margin: 10);
        c.Objective = "focus-n-fix";
        c.Constraint = new ConstraintConfig { Lambda = 0.5, Budget = new BudgetConfig { MinPsnrOutside = 60, StepSize = 0.2, Smoothing = 2 } };
        c.Train.Monitor!.MinPsnrOutside = 99;   // any change outside the mask on the validation images flags
        using var trainer = new FocusNFixTrainer(c, reward: new RedReward(), heatmapOverride: TopHalf, guardsOverride: new[] { new NotRedGuard() });
        var log = trainer.Train();
        var m = MonitorFile(trainer.RunDir);
        int stoppedAt = m.GetProperty("stopped_at").GetInt32();
        Assert.True(stoppedAt < 6, "the monitor did not stop the run");
        var written = JsonDocument.Parse(File.ReadAllText(Path.Combine(trainer.RunDir, RunFolder.LambdaName))).RootElement;
        Assert.Equal(stoppedAt, written.GetProperty("stopped_at").GetInt32());
        int kept = written.GetProperty("lora_step").GetInt32();
        Assert.Equal(m.GetProperty("lora_step").GetInt32(), kept);
        Assert.Equal(log.Single(e => e.Step == kept).Lambda, written.GetProperty("final_lambda").GetDouble());
        Assert.StartsWith($"the monitor stopped the run at step {stoppedAt} and it kept the LoRA of step {kept}", written.GetProperty("reading").GetString());
        // What fnf train prints is what the file says.
        Assert.Equal(written.GetProperty("reading").GetString(), trainer.BudgetReading);
        Assert.Equal(written.GetProperty("final_lambda").GetDouble(), trainer.FinalLambda);
    }
}
