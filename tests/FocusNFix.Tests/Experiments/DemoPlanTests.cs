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
        Assert.Equal((BaseModelRecipe.DefaultSteps, BaseModelRecipe.DefaultGuidance), (sampling.Steps, sampling.GuidanceScale));
    }

    [Fact]
    public void UnknownDefectIsRefused() =>
        Assert.Contains("expected hazard, glitch or rot", Assert.Throws<InvalidInputException>(() => new DemoPlan(Models, "/tmp/x", "blur", 60, 1)).Message);
}
