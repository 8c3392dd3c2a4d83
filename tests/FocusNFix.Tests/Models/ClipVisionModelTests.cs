using System.Text.Json.Nodes;
using FocusNFix.Conformance;
using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Models;

public class ClipVisionModelTests : IDisposable
{
    const string CaseName = "clip_vision_tiny";
    readonly ITestOutputHelper _out;
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-clipv-").FullName;

    public ClipVisionModelTests(ITestOutputHelper output) => _out = output;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void MatchesGoldenCase()
    {
        var r = ClipVisionCase.Run(Golden.Case(CaseName));
        Assert.Equal(r.Expected.Keys.OrderBy(k => k), r.Actual.Keys.OrderBy(k => k));
        foreach (var (name, e) in r.Expected)
            _out.WriteLine($"{name}: {Golden.AssertClose(e, r.Actual[name], 1e-5, 0, name):E2}");
    }

    [Fact]
    public void StateDictKeysAreTransformers()
    {
        var config = ClipVisionConfig.Load(Path.Combine(Golden.Case(CaseName), "config.json"));
        using var model = new ClipVisionModelWithProjection(config);
        var keys = model.state_dict().Keys.ToHashSet();
        var file = Safetensors.ReadHeader(Path.Combine(Golden.Case(CaseName), "model.safetensors")).Entries.Select(e => e.Name).ToHashSet();
        Assert.Equal(file.OrderBy(k => k), keys.OrderBy(k => k));
        Assert.Contains("vision_model.pre_layrnorm.weight", keys);
    }

    [Fact]
    public void WrongImageSizeIsRefused()
    {
        using var model = ClipVisionModelWithProjection.FromPretrained(Golden.Case(CaseName));
        var ex = Assert.Throws<InvalidInputException>(() => model.Forward(zeros(1, 3, 64, 64)));
        Assert.Contains("image_size", ex.Message);
    }

    /// <summary>A full CLIPModel folder assembled from the two tiny towers: both towers and the joint model load from it.</summary>
    [Fact]
    public void FullClipModelLoadsAndItsTowersMatchGolden()
    {
        var text = Safetensors.Load(Path.Combine(Golden.Case("clip_text_tiny"), "model.safetensors"));
        var vision = Safetensors.Load(Path.Combine(Golden.Case(CaseName), "model.safetensors"));
        var w = new Dictionary<string, Tensor>(text);
        foreach (var (k, v) in vision) w[k] = v;
        w["text_projection.weight"] = randn(24, 32);
        w["logit_scale"] = tensor(2.6592f);
        Safetensors.Save(Path.Combine(_dir, "model.safetensors"), w, new Dictionary<string, string> { ["format"] = "pt" });
        var textCfg = JsonNode.Parse(File.ReadAllText(Path.Combine(Golden.Case("clip_text_tiny"), "config.json")))!;
        var visionCfg = JsonNode.Parse(File.ReadAllText(Path.Combine(Golden.Case(CaseName), "config.json")))!;
        var cfg = new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPModel"), ["model_type"] = "clip", ["projection_dim"] = 24,
            ["logit_scale_init_value"] = 2.6592, ["text_config"] = textCfg, ["vision_config"] = visionCfg,
        };
        File.WriteAllText(Path.Combine(_dir, "config.json"), cfg.ToJsonString());

        var textIn = Golden.Inputs("clip_text_tiny")["input_ids"];
        var pixels = Golden.Inputs(CaseName)["pixel_values"];
        using var _ = no_grad();
        using var clip = ClipModel.FromPretrained(_dir);
        var visionOut = Golden.Outputs(CaseName);
        Golden.AssertClose(visionOut["image_embeds"], clip.GetImageFeatures(pixels), 1e-5, 0, "image features");
        var (perImage, perText) = clip.Forward(textIn, pixels);
        Assert.Equal(new long[] { 2, 2 }, perImage.shape);
        Golden.AssertClose(perImage.t(), perText, 0, 0, "transpose");

        using var textModel = ClipTextModel.FromPretrained(_dir);
        Golden.AssertClose(Golden.Outputs("clip_text_tiny")["last_hidden_state"], textModel.Forward(textIn).LastHiddenState, 1e-5, 0, "text tower from CLIPModel");
        using var visionModel = ClipVisionModelWithProjection.FromPretrained(_dir);
        Golden.AssertClose(visionOut["image_embeds"], visionModel.Forward(pixels).ImageEmbeds, 1e-5, 0, "vision tower from CLIPModel");
    }
}
