using FocusNFix.Conformance;
using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Models;

public class SafetyCheckerTests
{
    const string CaseName = "safety_checker_tiny";
    readonly ITestOutputHelper _out;

    public SafetyCheckerTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void MatchesGoldenCase()
    {
        var r = SafetyCheckerCase.Run(Golden.Case(CaseName));
        Assert.Equal(r.Expected.Keys.OrderBy(k => k), r.Actual.Keys.OrderBy(k => k));
        foreach (var (name, e) in r.Expected)
        {
            Assert.Equal(e.dtype, r.Actual[name].dtype);
            _out.WriteLine($"{name}: {Golden.AssertClose(e, r.Actual[name], name.StartsWith("has_nsfw") ? 0 : 1e-5, 0, name):E2}");
        }
        Assert.Equal(new long[] { 1, 0 }, r.Expected["has_nsfw_concepts"].data<long>().ToArray());
    }

    [Fact]
    public void ConceptScoreGradientsReachThePixels()
    {
        using var model = StableDiffusionSafetyChecker.FromPretrained(Golden.Case(CaseName));
        var pixels = Golden.Inputs(CaseName)["clip_input"].requires_grad_(true);
        var o = model.Forward(pixels);
        o.ConceptScores.sum().backward();
        var g = pixels.grad!;
        Assert.True(g.isfinite().all().item<bool>(), "gradient must be finite");
        Assert.True(g.abs().max().item<float>() > 0, "gradient must be non-zero");
        // The frozen embeddings and thresholds stay frozen.
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains("concept_embeds") && p.parameter.requires_grad);
    }

    [Fact]
    public void RoundedDecisionFollowsDiffusersForward()
    {
        // 0.0004 above the threshold: forward_onnx flags it, forward() rounds it to 0.0 and does not.
        var cos = tensor(new float[] { 0.5004f, 0.1f }).view(1, 2);
        var thr = tensor(new float[] { 0.5f, 0.9f });
        var special = tensor(new float[] { 0.0f, 0.0f, 0.0f }).view(1, 3);
        var specialThr = tensor(new float[] { 0.5f, 0.5f, 0.5f });
        Assert.Equal(new[] { false }, StableDiffusionSafetyChecker.RoundedDecision(special, cos, specialThr, thr));
        // A positive special score adds 0.01 to the concept scores: -0.0085 becomes 0.0015 (rounded 0.002 > 0).
        var special2 = tensor(new float[] { 0.503f, 0.492f, 0.0f }).view(1, 3);
        var cos2 = tensor(new float[] { 0.4915f, 0.1f }).view(1, 2);
        Assert.Equal(new[] { true }, StableDiffusionSafetyChecker.RoundedDecision(special2, cos2, specialThr, thr));
        // Without it the same concept score stays negative.
        Assert.Equal(new[] { false }, StableDiffusionSafetyChecker.RoundedDecision(special, cos2, specialThr, thr));
        var cos3 = tensor(new float[] { 0.489f, 0.1f }).view(1, 2);
        Assert.Equal(new[] { false }, StableDiffusionSafetyChecker.RoundedDecision(special2, cos3, specialThr, thr));
    }

    [Fact]
    public void BlackOutZerosOnlyFlaggedImages()
    {
        var images = rand(3, 4, 4, 3);
        var outImages = StableDiffusionSafetyChecker.BlackOut(images, new[] { false, true, false });
        Assert.Equal(0.0, outImages[1].abs().max().item<float>());
        Golden.AssertClose(images[0], outImages[0], 0, 0, "kept image 0");
        Golden.AssertClose(images[2], outImages[2], 0, 0, "kept image 2");
        Assert.Throws<InvalidInputException>(() => StableDiffusionSafetyChecker.BlackOut(images, new[] { true }));
    }

    [Fact]
    public void StateDictKeysAreDiffusers()
    {
        using var model = new StableDiffusionSafetyChecker(ClipConfig.Load(Path.Combine(Golden.Case(CaseName), "config.json")));
        var file = Safetensors.ReadHeader(Path.Combine(Golden.Case(CaseName), "model.safetensors")).Entries.Select(e => e.Name).OrderBy(k => k);
        Assert.Equal(file, model.state_dict().Keys.OrderBy(k => k));
    }
}
