using FocusNFix.Training;
using Xunit;

namespace FocusNFix.Tests.Training;

public class PreservationBudgetTests
{
    // A toy run: the PSNR outside the mask a lambda buys, rising with lambda, plus a little noise per step.
    static double ToyPsnr(double lambda, Random rng) => 20 + 10 * Math.Log10(1 + lambda) + (rng.NextDouble() - 0.5);

    [Theory]
    [InlineData(30.0)]
    [InlineData(35.0)]
    [InlineData(40.0)]
    public void DualAscentSettlesWhereTheBudgetBinds(double target)
    {
        var budget = new PreservationBudget(new BudgetConfig { MinPsnrOutside = target, StepSize = 0.5, Smoothing = 5, MaxLambda = 1000 }, initialLambda: 1);
        var rng = new Random(1);
        var late = new List<double>();
        for (int step = 0; step < 2000; step++)
        {
            double psnr = ToyPsnr(budget.Lambda, rng);
            if (step >= 1500) late.Add(psnr);
            budget.Update(psnr);
        }
        Assert.InRange(late.Average(), target - 0.5, target + 0.5);
        double exact = Math.Pow(10, (target - 20) / 10) - 1;
        Assert.InRange(budget.Lambda, 0.8 * exact, 1.25 * exact);
    }

    [Fact]
    public void TheProportionalTermSettlesOnTheToyWithLessOvershootThanThePlainAscent()
    {
        // A plant with lag: the PSNR follows the lambda of 8 steps before, as a LoRA's drift follows the weight.
        static (double Overshoot, double Late) Run(double proportional, double step)
        {
            var budget = new PreservationBudget(new BudgetConfig { MinPsnrOutside = 35, StepSize = step, Smoothing = 3, Proportional = proportional, MaxLambda = 1000 }, 1);
            var rng = new Random(2);
            var lambdas = new Queue<double>(Enumerable.Repeat(1.0, 8));
            var psnrs = new List<double>();
            for (int i = 0; i < 600; i++)
            {
                double psnr = ToyPsnr(lambdas.Dequeue(), rng);
                psnrs.Add(psnr);
                lambdas.Enqueue(budget.Update(psnr));
            }
            return (psnrs.Skip(20).Max() - 35, psnrs.Skip(400).Average());
        }
        var plain = Run(0, 0.5);
        var pi = Run(2, 0.1);
        Assert.InRange(pi.Late, 34.5, 35.5);
        Assert.True(pi.Overshoot < plain.Overshoot, $"PI overshoot {pi.Overshoot:F2} dB, plain {plain.Overshoot:F2} dB");
    }

    [Fact]
    public void MaxSlackCapsHowFarOneUpdateLowersLambdaButNeverAViolation()
    {
        var config = new BudgetConfig { MinPsnrOutside = 35, StepSize = 0.02, Smoothing = 1, Proportional = 0.15 };
        // A fresh LoRA: the images equal their originals (PSNR +Infinity, counted as 100 dB).
        var uncapped = new PreservationBudget(config, initialLambda: 1);
        Assert.Equal(0, uncapped.Update(double.PositiveInfinity));
        config.MaxSlack = 3;
        var capped = new PreservationBudget(config, initialLambda: 1);
        double lambda = capped.Update(double.PositiveInfinity);
        Assert.Equal(1 - 0.02 * 3 - 0.15 * 3, lambda, 12);
        Assert.Equal(1 - 0.02 * 3, capped.Integral, 12);
        // 10 dB under the budget counts in full.
        Assert.Equal(capped.Integral + 0.02 * 10 + 0.15 * 10, capped.Update(25), 12);
        Assert.Contains("constraint.budget.max_slack = 0", new BudgetConfig { MaxSlack = 0 }.Check("constraint.budget"));
        Assert.NotNull(new BudgetConfig { MaxSlack = double.NaN }.Check("constraint.budget"));
        Assert.Null(new BudgetConfig { MaxSlack = 3 }.Check("constraint.budget"));
    }

    [Fact]
    public void TheDerivativeTermAddsLambdaForAFallOfThePsnrOnlyAndResumesExactly()
    {
        var config = new BudgetConfig { MinPsnrOutside = 35, StepSize = 0.1, Smoothing = 1, Proportional = 0, Derivative = 0.5 };
        var budget = new PreservationBudget(config, initialLambda: 1);
        Assert.Equal(0.5, budget.Update(40), 12);            // no previous step: nothing has fallen
        Assert.Equal(0.2 + 0.5 * 2, budget.Update(38), 12);  // fell 2 dB
        Assert.Equal(0.0, budget.Update(39), 12);            // a rise does not lower lambda beyond the PI terms
        var copy = new PreservationBudget(config, 1);
        copy.LoadState(budget.SaveState(), "state");
        foreach (var p in new[] { 33.0, 30, 36 }) Assert.Equal(budget.Update(p), copy.Update(p));
        Assert.Contains("constraint.budget.derivative = -1", new BudgetConfig { Derivative = -1 }.Check("constraint.budget"));
        Assert.NotNull(new BudgetConfig { Derivative = double.NaN }.Check("constraint.budget"));
    }

    [Fact]
    public void TheDerivativeTermDampsTheDipUnderTheBudgetOfARunThatStartsAtItsOriginals()
    {
        // A run starts at its originals (100 dB) and its PSNR relaxes toward what the current lambda buys, as a LoRA's
        // drift follows the weight a few steps late; without lambda it would fall to 25 dB, so the PI controller, whose lambda is 0
        // on the way down, dips under the budget before lambda catches up (3.6 dB here against 1.3 dB with the derivative).
        static (double Dip, double Late) Run(double derivative)
        {
            var budget = new PreservationBudget(new BudgetConfig { MinPsnrOutside = 35, StepSize = 0.05, Smoothing = 3, Proportional = 0.3, Derivative = derivative }, 1);
            var rng = new Random(3);
            double psnr = 100;
            var psnrs = new List<double>();
            for (int i = 0; i < 400; i++)
            {
                budget.Update(psnr);
                psnr += 0.2 * (ToyPsnr(10 * budget.Lambda, rng) + 5 - psnr);
                psnrs.Add(psnr);
            }
            return (35 - psnrs.Min(), psnrs.Skip(300).Average());
        }
        var pi = Run(0);
        var pid = Run(1);
        Assert.InRange(pid.Late, 34.5, 35.5);
        Assert.True(pid.Dip < pi.Dip, $"PID dips {pid.Dip:F2} dB under the budget, PI {pi.Dip:F2} dB");
    }

    [Fact]
    public void TheTargetFallsFromAboveTheBudgetToItOverTheDescentAndStaysThere()
    {
        var config = new BudgetConfig { MinPsnrOutside = 35, StepSize = 0.1, Smoothing = 1, Proportional = 0, DescentDb = 10, DescentFraction = 0.5 };
        var budget = new PreservationBudget(config, initialLambda: 0);
        // At 40 dB the pictures are 5 dB over the budget but 5 dB under a target still 10 dB above it: lambda rises;
        // halfway through the descent the target is met; once it ends the budget itself is the target.
        foreach (var (psnr, progress, target, lambda) in new[] { (40.0, 0.0, 45.0, 0.5), (40, 0.25, 40, 0.5), (40, 0.5, 35, 0), (34, 0.9, 35, 0.1) })
        {
            budget.Update(psnr, progress);
            Assert.Equal(target, budget.Target, 12);
            Assert.Equal(lambda, budget.Lambda, 12);
        }
        // A resumed run reads the target it was at before its next update.
        var mid = new PreservationBudget(config, 0);
        mid.Update(40, progress: 0.1);
        var resumed = new PreservationBudget(config, 0);
        resumed.LoadState(mid.SaveState(), "state");
        Assert.Equal(43, resumed.Target, 12);
        // Without a descent the same steps see slack from the start.
        var plain = new PreservationBudget(new BudgetConfig { MinPsnrOutside = 35, StepSize = 0.1, Smoothing = 1, Proportional = 0 }, 0);
        Assert.Equal(0, plain.Update(40, progress: 0));
        Assert.Contains("constraint.budget.descent_fraction = 0", new BudgetConfig { DescentFraction = 0 }.Check("constraint.budget"));
        Assert.Contains("constraint.budget.descent_db = -1", new BudgetConfig { DescentDb = -1 }.Check("constraint.budget"));
    }

    [Fact]
    public void ANegativeOrInfiniteProportionalGainIsRefused()
    {
        Assert.Contains("constraint.budget.proportional = -1", new BudgetConfig { Proportional = -1 }.Check("constraint.budget"));
        Assert.NotNull(new BudgetConfig { Proportional = double.PositiveInfinity }.Check("constraint.budget"));
        Assert.Null(new BudgetConfig { Proportional = 2 }.Check("constraint.budget"));
    }

    [Fact]
    public void LambdaStaysWithinZeroAndTheCap()
    {
        var budget = new PreservationBudget(new BudgetConfig { MinPsnrOutside = 30, StepSize = 10, MaxLambda = 5 }, initialLambda: 2);
        budget.Update(double.PositiveInfinity);  // identical images: all slack
        Assert.Equal(0, budget.Lambda);
        for (int i = 0; i < 10; i++) budget.Update(5);
        Assert.Equal(5, budget.Lambda);
    }

    [Fact]
    public void TheStateRestoresLambdaAndTheSmoothingWindowExactly()
    {
        var config = new BudgetConfig { MinPsnrOutside = 35, StepSize = 0.3, Smoothing = 4, Proportional = 0.5 };
        var a = new PreservationBudget(config, 1);
        foreach (var p in new[] { 30.0, 33, 41, 28, 36, 39 }) a.Update(p);
        var b = new PreservationBudget(config, 1);
        b.LoadState(a.SaveState(), "state");
        Assert.NotEqual(a.Lambda, a.Integral);  // both parts of the state matter
        foreach (var p in new[] { 31.0, 37, 35 }) Assert.Equal(a.Update(p), b.Update(p));
        Assert.Equal(a.SmoothedPsnr, b.SmoothedPsnr);
        Assert.Equal(a.Integral, b.Integral);
    }

    [Fact]
    public void CalibrationSteersTheHeldOutPsnrToTheBudgetWhenItDiffersFromTheTrainingOne()
    {
        // The toy's held-out images change less than its training images: 3 dB more PSNR at every lambda.
        const double heldOutGain = 3;
        static (double Training, double HeldOut) Run(bool calibrate)
        {
            var budget = new PreservationBudget(new BudgetConfig { MinPsnrOutside = 35, StepSize = 0.5, Smoothing = 5, MaxLambda = 1000, Proportional = 0 }, initialLambda: 1);
            var rng = new Random(2);
            var late = new List<double>();
            for (int step = 0; step < 2000; step++)
            {
                double lambda = budget.Lambda;
                if (calibrate && step % 10 == 0) budget.Calibrate(ToyPsnr(lambda, new Random(step)) + heldOutGain);
                double psnr = ToyPsnr(lambda, rng);
                if (step >= 1500) late.Add(psnr);
                budget.Update(psnr);
            }
            return (late.Average(), late.Average() + heldOutGain);
        }
        var plain = Run(false);
        var calibrated = Run(true);
        Assert.InRange(plain.HeldOut, 37.5, 38.5);        // without: the training batches sit at the budget, held-out 3 dB over
        Assert.InRange(calibrated.HeldOut, 34.5, 35.5);   // with: the held-out images sit at the budget
        Assert.InRange(calibrated.Training, 31.5, 32.5);
    }

    [Fact]
    public void CalibrationComparesTheStepsSinceTheLastOneLeavesOutIdenticalImagesAndCapsOneOffset()
    {
        var b = new PreservationBudget(new BudgetConfig { MinPsnrOutside = 35, Smoothing = 1 }, 1);
        Assert.False(b.Calibrate(40));                    // no training step measured yet
        b.Update(double.PositiveInfinity);
        Assert.False(b.Calibrate(40));                    // the training images were still the originals
        b.Update(36);
        b.Update(38);
        Assert.False(b.Calibrate(double.PositiveInfinity)); // the held-out images are still the originals
        Assert.Equal(0, b.Offset);
        Assert.True(b.Calibrate(40));                     // against the mean of 36 and 38, not the last step
        Assert.Equal(3, b.Offset);
        Assert.False(b.Calibrate(40));                    // nothing trained since
        b.Update(20);
        Assert.True(b.Calibrate(70));
        Assert.Equal((3 + PreservationBudget.MaxOffset) / 2, b.Offset);   // capped, and the latest two averaged
        b.Update(36);
        Assert.True(b.Calibrate(34));
        Assert.Equal((PreservationBudget.MaxOffset - 2) / 2, b.Offset);
        Assert.Equal(35 - b.Offset, b.Target);
        Assert.Contains("held-out images measured", b.Reading(10));
    }

    [Fact]
    public void TheReadingSaysWhetherTheBudgetStillBindsOrTheFixStoppedNeedingIt()
    {
        var config = new BudgetConfig { MinPsnrOutside = 30, StepSize = 0.1, Smoothing = 1, Proportional = 0 };
        var b = new PreservationBudget(config, 0.5);
        Assert.Contains("never measured", b.Reading(10));
        b.Update(28);                                   // under the budget: lambda rises and binds
        Assert.Equal(0, b.StepsAtZero);
        Assert.Contains("binds at the end", b.Reading(10));
        for (int i = 0; i < 3; i++) b.Update(40);       // 10 dB of slack: lambda falls to 0 and stays
        Assert.Equal(0, b.Lambda);
        Assert.Equal(3, b.StepsAtZero);
        var reading = b.Reading(10);
        Assert.Contains("did not bind for the last 3 of 10 steps", reading);
        Assert.Contains("10.0 dB above the 30 dB budget", reading);
        b.Update(25);                                   // a violation binds it again
        Assert.Equal(0, b.StepsAtZero);
        Assert.True(b.Lambda > 0);
    }

    [Fact]
    public void TheStateKeepsTheStepsAtZeroAndAnOlderStateWithoutThemLoads()
    {
        var config = new BudgetConfig { MinPsnrOutside = 30, StepSize = 0.1, Smoothing = 2, Proportional = 0 };
        var a = new PreservationBudget(config, 0);
        foreach (var p in new[] { 40.0, 41, 42 }) a.Update(p);
        Assert.Equal(3, a.StepsAtZero);
        var b = new PreservationBudget(config, 0);
        b.LoadState(a.SaveState(), "state");
        Assert.Equal(3, b.StepsAtZero);
        Assert.Equal(a.Reading(9), b.Reading(9));
        a.Calibrate(45);
        a.Update(38);
        b.LoadState(a.SaveState(), "state");
        Assert.Equal(a.Offset, b.Offset);
        Assert.Equal(a.Update(39), b.Update(39));
        Assert.True(b.Calibrate(44));                     // the steps since the last calibration came along
        Assert.True(a.Calibrate(44));
        Assert.Equal(a.Offset, b.Offset);
        var old = new PreservationBudget(config, 0);
        old.LoadState("{\"Lambda\":0,\"Recent\":[40,41],\"Integral\":0}", "old state");
        Assert.Equal(0, old.StepsAtZero);
        Assert.Equal(0, old.Offset);
        Assert.Throws<InvalidInputException>(() => old.LoadState("{\"Lambda\":0,\"Recent\":[40],\"StepsAtZero\":-1}", "bad state"));
        Assert.Throws<InvalidInputException>(() => old.LoadState("{\"Lambda\":0,\"Recent\":[40],\"Offsets\":[\"NaN\"]}", "bad state"));
    }

    [Theory]
    [InlineData(double.NaN, 0.05, 5, 100)]
    [InlineData(35, 0.0, 5, 100)]
    [InlineData(35, 0.05, 0, 100)]
    [InlineData(35, 0.05, 5, double.PositiveInfinity)]
    [InlineData(150, 0.05, 5, 100)]
    public void BadBudgetsAreRefused(double psnr, double step, int smoothing, double cap)
    {
        var c = new BudgetConfig { MinPsnrOutside = psnr, StepSize = step, Smoothing = smoothing, MaxLambda = cap };
        Assert.NotNull(c.Check("constraint.budget"));
        Assert.Throws<InvalidInputException>(() => new PreservationBudget(c, 1));
    }
}
