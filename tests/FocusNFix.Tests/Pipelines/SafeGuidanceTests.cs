using FocusNFix.Pipelines;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Pipelines;

public class SafeGuidanceTests
{
    [Fact]
    public void PresetsAreDiffusersSafetyConfig()
    {
        // diffusers.pipelines.stable_diffusion_safe.SafetyConfig (0.27.2): warm-up, scale, threshold, momentum, beta.
        Assert.Equal(new SldSettings(20, 15, 0.0, 0.0, 0.0), SldSettings.Preset("weak"));
        Assert.Equal(new SldSettings(1000, 10, 0.01, 0.3, 0.4), SldSettings.Preset("medium"));
        Assert.Equal(new SldSettings(2000, 7, 0.025, 0.5, 0.7), SldSettings.Preset("strong"));
        Assert.Equal(new SldSettings(5000, 0, 1.0, 0.5, 0.7), SldSettings.Preset("MAX"));
        Assert.Equal(new[] { "weak", "medium", "strong", "max" }, SldSettings.Presets.Keys);
        var e = Assert.Throws<InvalidInputException>(() => SldSettings.Preset("huge"));
        Assert.Contains("'huge'", e.Message);
        Assert.Contains("weak, medium, strong, max", e.Message);
    }

    [Fact]
    public void DirectionFollowsTheFormulaWithMomentumDuringWarmupAndTheHardSwitch()
    {
        const double S = 100, T = 0.05, M = 0.5, Beta = 0.25;
        double[] u = { 0, 0.2, 0.1, 0 }, c = { 1, 0.5, -0.3, 0 }, s = { 0.9, 0.498, 0.4, 0.05 };
        using var guidance = new SafeGuidance(new SldSettings(S, 1, T, M, Beta));
        using var ut = tensor(u.Select(v => (float)v).ToArray());
        using var ct = tensor(c.Select(v => (float)v).ToArray());
        using var st = tensor(s.Select(v => (float)v).ToArray());
        var momentum = new double[4];
        for (int step = 0; step < 3; step++)
        {
            using var got = guidance.Direction(ut, ct, st, step);
            for (int k = 0; k < 4; k++)
            {
                double diff = c[k] - s[k];
                double scale = diff >= T ? 0 : Math.Min(Math.Abs(diff) * S, 1);
                double safety = (s[k] - u[k]) * scale + M * momentum[k];
                momentum[k] = Beta * momentum[k] + (1 - Beta) * safety;
                double expected = step >= 1 ? c[k] - u[k] - safety : c[k] - u[k];
                Assert.True(Math.Abs(got[k].item<float>() - expected) < 1e-6, $"step {step} element {k}: {got[k].item<float>()} != {expected}");
            }
        }
        // element 0 sits past the threshold: no safety guidance and so no momentum, at any step
        using var last = guidance.Direction(ut, ct, st, 3);
        Assert.Equal(1f, last[0].item<float>());
    }

    [Fact]
    public void SafetyBranchChangesTheImageAndIsOffWithScaleAtMostOne()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_sd15"));
        var prompts = new[] { "a red circle", "two blue squares and a green triangle" };
        SampleOptions Options(SldOptions? sld) => new() { Steps = 3, GuidanceScale = 5, Seeds = new long[] { 3, 4 }, Sld = sld };
        using var plain = pipe.Sample(prompts, Options(null));
        var warnings = new List<string>();
        using var off = pipe.Sample(prompts, Options(new SldOptions("green triangle", SldSettings.Medium with { GuidanceScale = 0 })), warn: warnings.Add);
        Assert.True(off.FinalLatents.eq(plain.FinalLatents).all().item<bool>(), "SLD scale 0 must leave sampling bit-identical");
        Assert.True(off.Images.eq(plain.Images).all().item<bool>());
        Assert.Contains(warnings, w => w.Contains("turns safe latent diffusion off"));

        var max = new SldOptions("green triangle", SldSettings.Max);
        var traces = new List<long[]>();
        using var safe = pipe.Sample(prompts, Options(max), onStep: t => traces.Add(t.UnetOutput.shape));
        Assert.Equal(new long[] { 6, 4, 16, 16 }, traces[0]); // uncond | cond | concept
        Assert.True((safe.FinalLatents - plain.FinalLatents).abs().max().item<float>() > 1e-2, "SLD max must move the sample");
        // the momentum is elementwise: an image does not depend on the others in its batch. The SLD scale (5000 here)
        // amplifies the UNet's batch-size rounding: measured 2.7e-4 on one machine and 1.2e-3 on another (1 torch
        // thread; 2 threads passed there), against 1.7e-5 without SLD and an SLD effect of 1.04; cross-talk would be of that order.
        using var alone = pipe.Sample(new[] { prompts[1] }, new SampleOptions { Steps = 3, GuidanceScale = 5, Seeds = new long[] { 4 }, Sld = max });
        double apart = (alone.FinalLatents[0] - safe.FinalLatents[1]).abs().max().item<float>();
        Assert.True(apart <= 5e-3, $"alone vs in a batch: {apart:G3} apart");
    }

    [Fact]
    public void BadSettingsAndMissingGuidanceAreRefused()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        InvalidInputException Refused(double guidance, SldOptions sld) => Assert.Throws<InvalidInputException>(() =>
            pipe.Sample(new[] { "x" }, new SampleOptions { Steps = 1, GuidanceScale = guidance, Seeds = new long[] { 0 }, Sld = sld }));
        var e = Refused(1.0, new SldOptions("green", SldSettings.Medium));
        Assert.Contains("needs classifier-free guidance", e.Message);
        Assert.Contains("sld_mom_beta = 1.5", Refused(5, new SldOptions("green", SldSettings.Medium with { MomentumBeta = 1.5 })).Message);
        Assert.Contains("sld_warmup_steps = -1", Refused(5, new SldOptions("green", SldSettings.Medium with { WarmupSteps = -1 })).Message);
        Assert.Contains("sld_guidance_scale", Refused(5, new SldOptions("green", SldSettings.Medium with { GuidanceScale = double.NaN })).Message);
        Assert.Contains("sld_threshold", Refused(5, new SldOptions("green", SldSettings.Medium with { Threshold = -0.1 })).Message);
        Assert.Contains("safety_concept is empty", Refused(5, new SldOptions(" ", SldSettings.Medium)).Message);
    }
}
