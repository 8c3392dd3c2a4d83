using System.Text.Json;
using FocusNFix.IO;
using FocusNFix.Rewards;
using FocusNFix.Tests.Rewards;
using FocusNFix.Training;
using Xunit;

namespace FocusNFix.Tests.Training;

/// <summary>constraint.budget in the trainer: lambda adapts per step, is logged, survives a resume exactly and ends in lambda.json.</summary>
public class BudgetTrainingTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-budget-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    static readonly IHeatmapSource TopHalf = FunctionHeatmap.TopHalf();

    TrainingConfig Config(string name, double minPsnr)
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle in the top left on a white background\na blue square in the center on a gray background\n");
        return new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"),
            OutputDir = Path.Combine(_tmp, name),
            Threads = 1,
            Prompts = new PromptConfig { File = prompts, SeedsPerPrompt = 1, Limit = null },
            Sampling = new SamplingConfig { Steps = 4, GuidanceScale = 2.0 },
            Draft = new DraftConfig { K = 2 },
            Lora = new LoraSection { Rank = 2, Alpha = 2 },
            Constraint = new ConstraintConfig { Lambda = 0.5, Budget = new BudgetConfig { MinPsnrOutside = minPsnr, StepSize = 0.2, Smoothing = 2, Proportional = 0 } },
            Optimizer = new OptimizerConfig { LearningRate = 2e-2, WarmupSteps = 1 },
            Train = new TrainLoopConfig { Steps = 6, BatchSize = 2, CheckpointEvery = 2, SampleEvery = 0 },
        };
    }

    [Fact]
    public void LambdaFollowsTheMeasuredPsnrAndIsLogged()
    {
        using var trainer = new FocusNFixTrainer(Config("follow", 60), reward: new RedReward(), heatmapOverride: TopHalf);
        var log = trainer.Train();
        Assert.Equal(0.5, log[0].Lambda);
        for (int i = 1; i < log.Count; i++)
        {
            // The dual step: lambda moves up when the smoothed PSNR is under the budget, down (not below 0) when over.
            var window = log.Take(i).TakeLast(2).Select(e => Math.Min(e.PsnrOutside, PreservationBudget.PsnrCeiling)).Average();
            var expected = Math.Clamp(log[i - 1].Lambda + 0.2 * (60 - window), 0, 100);
            Assert.Equal(expected, log[i].Lambda, 9);
        }
        // The zero-initialised LoRA reproduces I0 at step 0: nothing changed outside the mask.
        Assert.Equal(PreservationBudget.PsnrCeiling, Math.Min(log[0].PsnrOutside, PreservationBudget.PsnrCeiling));
        Assert.True(log.Skip(1).Any(e => e.PsnrOutside < PreservationBudget.PsnrCeiling), "training changed nothing outside the mask");
        var written = JsonDocument.Parse(File.ReadAllText(Path.Combine(trainer.RunDir, RunFolder.LambdaName))).RootElement;
        Assert.Equal(trainer.Lambda, written.GetProperty("final_lambda").GetDouble());
        Assert.Equal(trainer.Lambda > 0, written.GetProperty("binding_at_end").GetBoolean());
        Assert.Equal(trainer.BudgetReading, written.GetProperty("reading").GetString());
        Assert.Equal(trainer.Lambda == 0, written.GetProperty("steps_at_zero_at_end").GetInt32() > 0);
        Assert.Contains("\"lambda\":", File.ReadAllLines(Path.Combine(trainer.RunDir, FocusNFixTrainer.LogName))[0]);
        // The report draws lambda over time from the log when the budget moved it, with the PSNR it steered by.
        var curve = FocusNFix.Evaluation.Evaluator.CurveFromLog("focus-n-fix", Path.Combine(trainer.RunDir, FocusNFixTrainer.LogName));
        Assert.Equal(log.Select(e => e.Lambda), curve.Points.Select(p => p.Values["lambda"]));
        Assert.Equal(log.Select(e => e.PsnrOutside), curve.Points.Select(p => p.Values["psnr_outside_training"]));
        Assert.Null(curve.Monitor);
        var reportDir = Path.Combine(_tmp, "report");
        FocusNFix.Evaluation.ReportWriter.Write(new FocusNFix.Evaluation.EvaluationResult { Title = "budget", Methods = { "focus-n-fix" }, Curves = { curve } }, reportDir);
        Assert.True(File.Exists(Path.Combine(reportDir, "plots", "curve_lambda.png")));
        Assert.Contains("the constraint weight λ the step used", File.ReadAllText(Path.Combine(reportDir, "report.md")));
    }

    [Fact]
    public void WithTheMedianStatisticLambdaFollowsTheBatchMedianOverShards()
    {
        var c = Config("median", 60);
        c.Prompts.SeedsPerPrompt = 2;
        c.Train.BatchSize = 3;
        c.Train.GradientShards = 3; // one image a shard: the median is gathered from the shards' slots
        c.Constraint.Budget!.Statistic = BudgetStatistic.Median;
        using var trainer = new FocusNFixTrainer(c, reward: new RedReward(), heatmapOverride: TopHalf);
        var log = trainer.Train();
        Assert.Equal(PreservationBudget.PsnrCeiling, Math.Min(log[0].PsnrOutsideMedian, PreservationBudget.PsnrCeiling));
        for (int i = 1; i < log.Count; i++)
        {
            var window = log.Take(i).TakeLast(2).Select(e => Math.Min(e.PsnrOutsideMedian, PreservationBudget.PsnrCeiling)).Average();
            Assert.Equal(Math.Clamp(log[i - 1].Lambda + 0.2 * (60 - window), 0, 100), log[i].Lambda, 9);
        }
        // Three images: the median is one of them and, once training has changed them unequally, not their mean.
        Assert.Contains(log, e => Math.Abs(e.PsnrOutsideMedian - e.PsnrOutside) > 1e-6);
        Assert.Contains("\"psnr_outside_median\":", File.ReadAllLines(Path.Combine(trainer.RunDir, FocusNFixTrainer.LogName))[1]);
    }

    [Fact]
    public void TheStatisticIsReadFromTheConfigAndAnUnknownOneIsRefusedByName()
    {
        var path = Path.Combine(_tmp, "median.json");
        var c = Config("read", 35);
        File.WriteAllText(path, c.ToJson().Replace("\"statistic\": \"mean\"", "\"statistic\": \"median\""));
        Assert.Equal(BudgetStatistic.Median, TrainingConfig.Load(path).Constraint.Budget!.Statistic);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"statistic\": \"median\"", "\"statistic\": \"avg\""));
        var e = Assert.Throws<InvalidInputException>(() => TrainingConfig.Load(path));
        Assert.Contains("statistic", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]   // the derivative term and a descending target: both read the step and the previous PSNR
    public void ResumeRestoresLambdaAndEndsWithTheSameLora(bool pidAndDescent)
    {
        TrainingConfig Make(string name)
        {
            var c = Config(name, 45);
            if (pidAndDescent) { c.Constraint.Budget!.Derivative = 0.3; c.Constraint.Budget.DescentDb = 10; c.Constraint.Budget.DescentFraction = 0.8; }
            return c;
        }
        using (var full = new FocusNFixTrainer(Make("full"), reward: new RedReward(), heatmapOverride: TopHalf)) full.Train();
        using (var first = new FocusNFixTrainer(Make("resumed"), reward: new RedReward(), heatmapOverride: TopHalf)) first.Train(stopAfter: 3);
        double resumedLambda;
        using (var second = new FocusNFixTrainer(Make("resumed"), resume: true, reward: new RedReward(), heatmapOverride: TopHalf))
        {
            Assert.Equal(2, second.StartStep);
            second.Train();
            resumedLambda = second.Lambda;
        }
        var a = Safetensors.Load(Path.Combine(_tmp, "full", FocusNFixTrainer.FinalPeftName));
        var b = Safetensors.Load(Path.Combine(_tmp, "resumed", FocusNFixTrainer.FinalPeftName));
        double max = a.Keys.Max(k => (a[k] - b[k]).abs().max().item<float>());
        Assert.True(max <= 1e-6, $"max difference {max}");
        var fullLog = JsonlLog.Read<TrainStepLog>(Path.Combine(_tmp, "full", FocusNFixTrainer.LogName)).ToList();
        var resumed = JsonlLog.Read<TrainStepLog>(Path.Combine(_tmp, "resumed", FocusNFixTrainer.LogName)).ToList();
        Assert.Equal(fullLog.Select(e => e.Lambda), resumed.Select(e => e.Lambda));
        var finalFull = JsonDocument.Parse(File.ReadAllText(Path.Combine(_tmp, "full", RunFolder.LambdaName))).RootElement.GetProperty("final_lambda").GetDouble();
        Assert.Equal(finalFull, resumedLambda);
    }

    [Fact]
    public void ABudgetIsRefusedForDraftAndOutOfRange()
    {
        var c = Config("bad", 35);
        c.Objective = "draft";
        Assert.Contains("constraint.budget", Assert.Throws<InvalidInputException>(() => c.Validate("cfg")).Message);
        c = Config("bad", 35);
        c.Constraint.Budget!.MinPsnrOutside = double.NaN;
        Assert.Contains("constraint.budget.min_psnr_outside", Assert.Throws<InvalidInputException>(() => c.Validate("cfg")).Message);
    }
}
