using FocusNFix.Experiments;
using Xunit;

namespace FocusNFix.Tests.Experiments;

/// <summary>The sweep's grid, its training configs and its config checks (training and evaluation are covered by SweepCliTests).</summary>
public class SweepPlanTests : IDisposable
{
    readonly string _out = Directory.CreateTempSubdirectory("fnf-sweep-plan-").FullName;
    public void Dispose() => Directory.Delete(_out, true);

    static string Models => Path.Combine(Golden.Root, "models", "shapesworld");

    SweepConfig Config() => new()
    {
        Models = Models, OutputDir = _out, Concept = "hazard mark", TrainSeeds = new() { 0, 1, 2 },
        FocusNFix = new TrainedGrid { Lambdas = new() { 0.3, 1 }, LearningRates = new() { 1e-3, 2e-3 } },
        Global = new TrainedGrid { Lambdas = new() { 1 }, LearningRates = new() { 2e-3 } },
        Draft = new TrainedGrid { LearningRates = new() { 2e-3 } },
        Refl = new TrainedGrid { Lambdas = new() { 1 }, LearningRates = new() { 2e-3 } },
        Sld = new SldGrid { Presets = new() { "medium", "Strong" }, Scales = new() { 500 } },
        NegativePrompt = new NegativePromptGrid { GuidanceScales = new() { 1.5, 2 } },
    };

    [Fact]
    public void TheGridHasOneSettingPerCombinationWithUniqueFolderNames()
    {
        var plan = new SweepPlan(Config());
        Assert.Equal(4 + 1 + 1 + 1 + 3 + 2, plan.Settings.Count);
        Assert.Equal(plan.Settings.Count, plan.Settings.Select(s => s.Id).Distinct().Count());
        Assert.All(plan.Settings, s => Assert.True(s.Id.IndexOfAny(Path.GetInvalidFileNameChars()) < 0, s.Id));
        Assert.Contains(plan.Settings, s => s.Id == "focus-n-fix_lambda0.3_lr0.001");
        Assert.Contains(plan.Settings, s => s.Id == "sld_presetstrong_guidance1.5");
    }

    [Fact]
    public void TrainingConfigsCarryTheSettingSeedAndTheRightCache()
    {
        var plan = new SweepPlan(Config());
        var fnf = plan.Settings.First(s => s.Method == "focus-n-fix" && s.Lambda == 0.3 && s.LearningRate == 2e-3);
        var cfg = plan.TrainingConfig(fnf, 2);
        Assert.Equal("focus-n-fix", cfg.Objective);
        Assert.Equal(2, cfg.Seed);
        Assert.Equal(0.3, cfg.Constraint.Lambda);
        Assert.Equal(2e-3, cfg.Optimizer.LearningRate);
        Assert.Equal("draft-k", cfg.Draft.Mode);
        Assert.Equal(Path.Combine(_out, "runs", "focus-n-fix_lambda0.3_lr0.002_seed2"), cfg.OutputDir);
        cfg.Validate("test");

        var refl = plan.TrainingConfig(plan.Settings.First(s => s.Method == "refl"), 0);
        Assert.Equal(("focus-n-fix", "refl"), (refl.Objective, refl.Draft.Mode));
        Assert.NotEqual(cfg.Train.CacheDir, refl.Train.CacheDir);  // ReFL caches the x0 prediction, not the final image
        var draft = plan.TrainingConfig(plan.Settings.First(s => s.Method == "draft"), 0);
        Assert.Equal(("draft", 0.0), (draft.Objective, draft.Constraint.Lambda));
        Assert.Equal(cfg.Train.CacheDir, draft.Train.CacheDir);
        // Every trained run of a sweep draws the same pool and budget: only the setting and the seed differ.
        Assert.Equal(cfg.Prompts.Limit, draft.Prompts.Limit);
        Assert.Equal(cfg.Train.Steps, draft.Train.Steps);
    }

    [Fact]
    public void SamplingVariantsSteerAwayFromTheConcept()
    {
        var plan = new SweepPlan(Config());
        var sld = plan.Variant(plan.Settings.First(s => s.SldScale == 500));
        Assert.Equal("hazard mark", sld.Sld!.Concept);
        Assert.Equal(500, sld.Sld.Settings.GuidanceScale);
        Assert.Equal(1.5, sld.GuidanceScale); // the grid's default, the bundled base model's guidance
        var neg = plan.Variant(plan.Settings.First(s => s.Method == "negative-prompt" && s.GuidanceScale == 1.5));
        Assert.Equal(("hazard mark", 1.5), (neg.NegativePrompt, neg.GuidanceScale!.Value));
        Assert.Null(neg.Sld);
    }

    [Theory]
    [InlineData("split", "train")]
    [InlineData("draft_lambda", "")]
    [InlineData("no_concept", "")]
    [InlineData("sld_scale", "")]
    [InlineData("neg_guidance", "")]
    [InlineData("seeds", "")]
    [InlineData("lr", "")]
    [InlineData("no_methods", "")]
    public void BadSettingsAreRefusedNamingTheKey(string what, string _)
    {
        var c = Config();
        string key;
        switch (what)
        {
            case "split": c.Split = "train"; key = "split"; break;
            case "draft_lambda": c.Draft!.Lambdas.Add(1); key = "draft.lambdas"; break;
            case "no_concept": c.Concept = null; key = "concept"; break;
            case "sld_scale": c.Sld!.Scales.Add(1.0); key = "sld.scales"; break;
            case "neg_guidance": c.NegativePrompt!.GuidanceScales.Add(double.NaN); key = "negative_prompt.guidance_scales"; break;
            case "seeds": c.TrainSeeds = new() { 1, 1 }; key = "train_seeds"; break;
            case "lr": c.FocusNFix!.LearningRates.Add(0); key = "focus_n_fix.learning_rates"; break;
            default: c.FocusNFix = c.Global = c.Draft = c.Refl = null; c.Sld = null; c.NegativePrompt = null; key = "methods"; break;
        }
        var e = Assert.Throws<InvalidInputException>(() => c.Validate("sweep.json"));
        Assert.Contains($"sweep.json: {key}", e.Message);
    }

    [Fact]
    public void TheDefaultGridIsValidAndRoundTripsThroughJson()
    {
        var c = SweepConfig.Default("hazard", Models);
        c.Validate("default");
        var path = Path.Combine(_out, "c.json");
        File.WriteAllText(path, c.ToJson());
        Assert.Equal(c.ToJson(), SweepConfig.Load(path).ToJson());
        Assert.Equal("val", c.Split);
        Assert.Equal(3, c.TrainSeeds.Count);
        Assert.Equal("a hazard mark", c.Concept);  // the bundled world's caption phrase
        Assert.Equal(4, c.Sld!.Presets.Count);
    }

    [Fact]
    public void AnUnknownKeyInTheFileIsNamed()
    {
        var path = Path.Combine(_out, "c.json");
        File.WriteAllText(path, "{ \"focus_n_fix\": { \"lambda\": [1] } }");
        var e = Assert.Throws<InvalidInputException>(() => SweepConfig.Load(path));
        Assert.Contains("focus_n_fix.lambda", e.Message);
    }

    static SweepPoint Point(string id, double rate, double psnr, double alignment) => new()
    {
        Setting = id, Method = "m",
        Figures = new() { ["oracle_hazard"] = new(rate, rate, rate, 1), ["psnr_outside"] = new(psnr, psnr, psnr, 1), ["judge_alignment"] = new(alignment, alignment, alignment, 1) },
    };

    [Fact]
    public void TheSelectionRuleTakesTheLowestRateAmongSettingsThatKeepTheImage()
    {
        var rule = new SelectionRule { MinPsnrOutside = 35, MaxAlignmentDrop = 0.05 };
        var pts = new[] { Point("a", 0.00, 20, 1.0), Point("b", 0.05, 36, 0.97), Point("c", 0.02, 40, 0.90), Point("d", 0.10, 45, 1.0) };
        // a erases too much, c loses alignment: b is the lowest rate that keeps both.
        Assert.Equal("b", SweepReport.Choose(pts, "oracle_hazard", 1.0, rule).Setting);
        // None keeps the image: the highest PSNR outside.
        Assert.Equal("d", SweepReport.Choose(pts, "oracle_hazard", 1.0, new SelectionRule { MinPsnrOutside = 60 }).Setting);
        // Equal rates (two lambdas both at 0%): the one that keeps more outside the mask, wherever it is in the grid.
        var tied = new[] { Point("lambda0.3", 0.0, 41.5, 1.0), Point("lambda1", 0.0, 45.2, 1.0), Point("lambda3", 0.04, 50.4, 1.0) };
        Assert.Equal("lambda1", SweepReport.Choose(tied, "oracle_hazard", 1.0, rule).Setting);
    }
}
