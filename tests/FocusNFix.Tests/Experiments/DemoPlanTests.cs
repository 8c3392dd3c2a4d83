using System.Text.Json.Nodes;
using FocusNFix.Experiments;
using FocusNFix.ShapesWorld;
using FocusNFix.WorldModels;
using Xunit;

namespace FocusNFix.Tests.Experiments;

public class DemoPlanTests
{
    static string Models => Path.Combine(Golden.Root, "models", "shapesworld");

    [Theory]
    [InlineData("hazard")]
    [InlineData("glitch")]
    public void MethodsShareEverythingButTheObjectiveAndTheRunFolder(string defect)
    {
        var plan = new DemoPlan(Models, "/tmp/demo-plan-test", defect, 60, 1);
        JsonObject Comparable(string method)
        {
            var cfg = plan.TrainingConfig(method);
            cfg.Validate(method);
            Assert.Equal(method, cfg.Objective);
            Assert.EndsWith($"reward-{defect}", cfg.Rewards.Single().Path);
            Assert.EndsWith($"reward-{defect}", cfg.Heatmap.Path!);
            Assert.Equal(60, cfg.Train.Steps);
            var o = JsonNode.Parse(cfg.ToJson())!.AsObject();
            o.Remove("objective");
            o.Remove("output_dir");
            return o;
        }
        var draft = Comparable("draft").ToJsonString();
        Assert.Equal(draft, Comparable("global").ToJsonString());
        Assert.Equal(draft, Comparable("focus-n-fix").ToJsonString());
        // Sampled with the base model's recommended sampling, so I0 is what a user of the model sees.
        var sampling = plan.TrainingConfig("draft").Sampling;
        var recommended = FocusNFix.Pipelines.PipelineFolder.Open(plan.BaseModel).RecommendedSampling;
        Assert.Equal((recommended.Steps, recommended.GuidanceScale), (sampling.Steps, sampling.GuidanceScale));
    }

    [Fact]
    public void EveryMethodTrainsWithTheSamplingTheBaseModelsIndexRecommends()
    {
        // A bundle whose model_index.json recommends 30 steps at guidance 1.25 (neither the real bundle's nor the recipe's); every other file is the real bundle's.
        var models = Directory.CreateTempSubdirectory("fnf-demo-plan-").FullName;
        try
        {
            // Folders are linked, files copied: every entry of `from` but `except` appears in `to`.
            static void Mirror(string from, string to, string except)
            {
                foreach (var entry in Directory.EnumerateFileSystemEntries(from).Where(e => Path.GetFileName(e) != except))
                    if (Directory.Exists(entry)) Directory.CreateSymbolicLink(Path.Combine(to, Path.GetFileName(entry)), entry);
                    else File.Copy(entry, Path.Combine(to, Path.GetFileName(entry)));
            }
            Mirror(Models, models, except: "base");
            var baseDir = Directory.CreateDirectory(Path.Combine(models, "base")).FullName;
            Mirror(Path.Combine(Models, "base"), baseDir, except: "model_index.json");
            var index = JsonNode.Parse(File.ReadAllText(Path.Combine(Models, "base", "model_index.json")))!.AsObject();
            index["_focusnfix_sampling"] = new JsonObject { ["steps"] = 30, ["guidance_scale"] = 1.25 };
            File.WriteAllText(Path.Combine(baseDir, "model_index.json"), index.ToJsonString());

            var plan = new DemoPlan(models, "/tmp/demo-plan-test", "rot", null, 1);
            Assert.Equal((30, 1.25), plan.BaseSampling);
            Assert.All(plan.Methods, m => Assert.Equal((30, (double?)1.25), (plan.TrainingConfig(m).Sampling.Steps, plan.TrainingConfig(m).Sampling.GuidanceScale)));
            Assert.NotEqual((BaseModelRecipe.DefaultSteps, BaseModelRecipe.DefaultGuidance), plan.BaseSampling);
        }
        finally { Directory.Delete(models, recursive: true); }
    }

    [Fact]
    public void TheRotDemoUsesTheSweepsChosenSettingsPerMethodAndTheTrainingFreeBaselines()
    {
        var plan = new DemoPlan(Models, "/tmp/demo-plan-test", "rot", null, 1);
        Assert.Equal(DemoPlan.RotSteps, plan.Steps);
        Assert.Equal(new[] { "draft", "global", "focus-n-fix", "refl" }, plan.Methods);
        var cfgs = plan.Methods.ToDictionary(m => m, plan.TrainingConfig);
        foreach (var (m, c) in cfgs) c.Validate(m);
        Assert.Equal(new[] { 0, 0.3, 0.3, 1 }, plan.Methods.Select(m => cfgs[m].Constraint.Lambda));
        Assert.All(cfgs.Values, c => Assert.Equal(2e-3, c.Optimizer.LearningRate));
        Assert.Equal(("focus-n-fix", "refl"), (cfgs["refl"].Objective, cfgs["refl"].Draft.Mode));
        Assert.Equal("draft-k", cfgs["focus-n-fix"].Draft.Mode);
        // ReFL caches the x0 prediction, not the final originals: a shared cache would hand one method the other's.
        Assert.Equal(plan.ReflCacheDir, cfgs["refl"].Train.CacheDir);
        Assert.All(new[] { "draft", "global", "focus-n-fix" }, m => Assert.Equal(plan.CacheDir, cfgs[m].Train.CacheDir));
        Assert.Equal(new[] { "sld", "negative-prompt" }, plan.SamplingBaselines.Select(v => v.Method));
        var sld = plan.SamplingBaselines[0];
        Assert.Equal(("rot", FocusNFix.Pipelines.SldSettings.Max, 1.5), (sld.Sld!.Concept, sld.Sld.Settings, sld.GuidanceScale));
        var neg = plan.SamplingBaselines[1];
        Assert.Equal(("rot", 1.5, (FocusNFix.Pipelines.SldOptions?)null), (neg.NegativePrompt, neg.GuidanceScale, neg.Sld));
        Assert.Empty(new DemoPlan(Models, "/tmp/demo-plan-test", "hazard", null, 1).SamplingBaselines);
        Assert.Equal(DemoPlan.DefaultSteps, new DemoPlan(Models, "/tmp/demo-plan-test", "hazard", null, 1).Steps);
    }

    [Fact]
    public void TheRotDemoRunsWhatTheValSweepUnderTheBundlesSamplingChose()
    {
        // results/rot-val-s20 holds the val sweep the demo's settings come from: its chosen settings and the sampling
        // its runs trained with must be the demo's, so a change of either side (a new sweep, a new bundle) shows here.
        var dir = Path.Combine(Golden.Root, "results", "rot-val-s20");
        var chosen = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "sweep-report.json")))!["chosen"]!.AsObject()
            .ToDictionary(p => p.Key, p => (string)p.Value!);
        var plan = new DemoPlan(Models, "/tmp/demo-plan-test", "rot", null, 1);
        foreach (var m in plan.Trained)
            Assert.Equal(chosen[m.Name], new SweepSetting(m.Name, m.Name == "draft" ? null : m.Lambda, m.LearningRate).Id);
        Assert.Equal(chosen[SweepSetting.SldMethod], DemoPlan.RotSld.Id);
        Assert.Equal(chosen[SweepSetting.NegativePromptMethod], DemoPlan.RotNegativePrompt.Id);
        Assert.Equal(plan.BaseSampling.GuidanceScale, DemoPlan.RotSld.GuidanceScale);
        foreach (var run in Directory.EnumerateDirectories(Path.Combine(dir, "runs")))
        {
            var sampling = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!["sampling"]!;
            Assert.Equal(plan.BaseSampling, ((int)sampling["steps"]!, (double)sampling["guidance_scale"]!));
        }
    }

    [Fact]
    public void OnlyTheRotDemoShrinksItsPoolAndTestPromptsWhileTheSweepKeepsTheFullPool()
    {
        // The sweep builds its configs through a DemoPlan without the demo's budget: its runs must stay comparable.
        var sweepLike = new DemoPlan(Models, "/tmp/demo-plan-test", "rot", 60, 1);
        Assert.Equal((64, DemoPlan.SweepPoolSeeds), (sweepLike.TrainingConfig("focus-n-fix").Prompts.Limit, sweepLike.TrainingConfig("focus-n-fix").Prompts.SeedsPerPrompt));
        var demo = new DemoPlan(Models, "/tmp/demo-plan-test", "rot", null, 1)
        {
            PoolSeedsPerPrompt = DemoPlan.DemoPoolSeedsFor("rot"), TestPrompts = DemoPlan.DemoTestPromptsFor("rot"),
        };
        Assert.All(demo.Methods, m => Assert.Equal(1, demo.TrainingConfig(m).Prompts.SeedsPerPrompt));
        Assert.Equal(DemoPlan.RotTestPrompts, demo.TestPrompts);
        Assert.Equal((DemoPlan.SweepPoolSeeds, (int?)null), (DemoPlan.DemoPoolSeedsFor("hazard"), DemoPlan.DemoTestPromptsFor("glitch")));
        Assert.Contains("expected at least 1", Assert.Throws<InvalidInputException>(() => new DemoPlan(Models, "/tmp/x", "rot", null, 1) { PoolSeedsPerPrompt = 0 }).Message);
    }

    [Fact]
    public void UnknownDefectIsRefused() =>
        Assert.Contains("expected hazard, glitch or rot", Assert.Throws<InvalidInputException>(() => new DemoPlan(Models, "/tmp/x", "blur", 60, 1)).Message);
}
