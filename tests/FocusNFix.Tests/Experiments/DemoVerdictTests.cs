using FocusNFix.Evaluation;
using FocusNFix.Experiments;
using Xunit;

namespace FocusNFix.Tests.Experiments;

public class DemoVerdictTests
{
    static readonly DemoMethod[] Trained = { new("draft", 0, 2e-3), new("global", 0.3, 2e-3), new("focus-n-fix", 0.3, 2e-3) };

    /// <summary>A demo's result on 32 prompts x 1 seed with the given (rot rate, PSNR outside, every object correct) per method.</summary>
    static EvaluationResult Fixture(params (string Method, double Rate, double? Psnr, double Correct)[] rows)
    {
        var r = new EvaluationResult { Methods = rows.Select(x => x.Method).ToList(), Prompts = Enumerable.Range(0, 32).Select(i => $"p{i}").ToList(), Seeds = { 1000 } };
        foreach (var (m, rate, psnr, correct) in rows)
        {
            var s = new MethodSummary { Method = m, Images = 32 };
            s.Aggregates["oracle_rot"] = rate;
            s.Aggregates[DemoVerdict.CorrectFigure] = correct;
            if (psnr is double p) s.Aggregates[MetricNames.PsnrOutside] = p;
            r.Summaries.Add(s);
        }
        return r;
    }

    [Fact]
    public void TheVerdictStatesFocusNFixAgainstTheBaseAndTheGlobalConstraintThenEveryOtherMethod()
    {
        var r = Fixture(("base", 0.4375, null, 0.96875), ("draft", 0, 27.76, 0.96875), ("global", 0.0625, 32.46, 1),
            ("focus-n-fix", 0.03125, 33.38, 1), ("sld", 0.3125, 34.86, 1));
        var v = DemoVerdict.Compose(r, "rot", Trained);
        Assert.StartsWith("**Focus-N-Fix (lambda 0.3)** took the rot rate from 43.8% to **3.1%**, kept the rest of the picture at a median PSNR outside the mask of 33.4 dB, with every object correct in 100.0% of images (base model 96.9%).", v);
        Assert.Contains("The global constraint (lambda 0.3): 6.3% at 32.5 dB; Focus-N-Fix is +0.9 dB outside the mask and -3.1 points of rot from it.", v);
        Assert.Contains("The other methods (rot rate, PSNR outside, every object correct): draft 0.0%, 27.8 dB, 96.9%; sld 31.3%, 34.9 dB, 100.0%.", v);
        Assert.EndsWith("One training seed and 32 test images: one image moves a rate by 3.1 points, so differences of a few points are noise. `fnf sweep` draws the fronts with intervals over prompts and three training seeds.", v);
    }

    [Fact]
    public void WithoutTheBaseOrFocusNFixThereIsNoVerdict()
    {
        Assert.Equal("", DemoVerdict.Compose(Fixture(("draft", 0, 27.75, 1), ("focus-n-fix", 0.03, 33, 1)), "rot", Trained));
        Assert.Equal("", DemoVerdict.Compose(Fixture(("base", 0.4, null, 1), ("global", 0.03, 33, 1)), "rot", Trained));
    }
}
