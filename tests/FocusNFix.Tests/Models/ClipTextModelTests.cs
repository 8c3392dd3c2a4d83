using FocusNFix.Conformance;
using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Models;

public class ClipTextModelTests : IDisposable
{
    const string CaseName = "clip_text_tiny";
    readonly ITestOutputHelper _out;
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-clip-").FullName;

    public ClipTextModelTests(ITestOutputHelper output) => _out = output;
    public void Dispose() => Directory.Delete(_dir, true);

    static Dictionary<string, Tensor> Weights() => Safetensors.Load(Path.Combine(Golden.Case(CaseName), "model.safetensors"));

    [Fact]
    public void MatchesGoldenCase()
    {
        var r = ClipTextCase.Run(Golden.Case(CaseName));
        Assert.Equal(r.Expected.Keys.OrderBy(k => k), r.Actual.Keys.OrderBy(k => k));
        foreach (var (name, e) in r.Expected)
            _out.WriteLine($"{name}: {Golden.AssertClose(e, r.Actual[name], 1e-5, 0, name):E2}");
    }

    [Fact]
    public void ClipSkipIsFinalLayerNormOfEarlierHiddenState()
    {
        using var model = ClipTextModel.FromPretrained(Golden.Case(CaseName));
        var ids = Golden.Inputs(CaseName)["input_ids"];
        var expected = Golden.Outputs(CaseName);
        using var _ = no_grad();
        var o = model.Forward(ids);
        Assert.Equal(6, o.HiddenStates.Count);
        // k = 0 is last_hidden_state; k = 1 is final_layer_norm(hidden_states[-2]), computed without the last layer.
        Assert.Equal(0.0, Golden.AssertClose(o.LastHiddenState, model.EncodePrompt(ids, 0), 0, 0, "clip_skip 0"));
        var skip1 = model.EncodePrompt(ids, 1);
        Golden.AssertClose(model.TextModel.FinalLayerNorm(o.HiddenStates[^2]), skip1, 1e-6, 0, "clip_skip 1 vs own hidden state");
        Golden.AssertClose(model.TextModel.FinalLayerNorm(expected["hidden_states.4"]), skip1, 1e-5, 0, "clip_skip 1 vs golden hidden_states.4");
        Assert.True((skip1 - o.LastHiddenState).abs().max().item<float>() > 1e-3, "clip skip 1 should differ from the last layer");
        var ex = Assert.Throws<InvalidInputException>(() => model.EncodePrompt(ids, 6));
        Assert.Contains("clip_skip 6", ex.Message);
    }

    [Fact]
    public void HiddenActGeluIsSelectedFromConfig()
    {
        var config = ClipTextConfig.Load(Path.Combine(Golden.Case(CaseName), "config.json"));
        Assert.Equal("quick_gelu", config.HiddenAct);
        using var quick = new ClipTextModel(config);
        using var gelu = new ClipTextModel(config with { HiddenAct = "gelu" });
        var w = Weights();
        StateDict.LoadStrict(quick, w, "golden");
        StateDict.LoadStrict(gelu, w, "golden");
        var ids = Golden.Inputs(CaseName)["input_ids"];
        using var _ = no_grad();
        var a = quick.Forward(ids).LastHiddenState;
        var b = gelu.Forward(ids).LastHiddenState;
        Assert.True(b.isfinite().all().item<bool>());
        Assert.True((a - b).abs().max().item<float>() > 1e-4, "gelu and quick_gelu must give different outputs");
        Golden.AssertClose(Golden.Outputs(CaseName)["last_hidden_state"], a, 1e-5, 0, "quick_gelu");

        var bad = Assert.Throws<InvalidInputException>(() => new ClipTextModel(config with { HiddenAct = "gelu_42" }));
        Assert.Contains("gelu_42", bad.Message);
    }

    [Fact]
    public void LegacyCheckpointWithPositionIdsLoads()
    {
        var w = Weights();
        w["text_model.embeddings.position_ids"] = arange(77, dtype: int64).unsqueeze(0);
        Safetensors.Save(Path.Combine(_dir, "model.safetensors"), w, new Dictionary<string, string> { ["format"] = "pt" });
        File.Copy(Path.Combine(Golden.Case(CaseName), "config.json"), Path.Combine(_dir, "config.json"));
        using var model = ClipTextModel.FromPretrained(_dir);
        Assert.DoesNotContain(model.state_dict().Keys, k => k.Contains("position_ids"));
        using var _ = no_grad();
        var o = model.Forward(Golden.Inputs(CaseName)["input_ids"]);
        Golden.AssertClose(Golden.Outputs(CaseName)["pooler_output"], o.PooledOutput, 1e-5, 0, "pooler_output");
    }

    [Fact]
    public void WrongModelWeightsAreRefusedWithKeyList()
    {
        File.Copy(Path.Combine(Golden.Case(CaseName), "config.json"), Path.Combine(_dir, "config.json"));
        File.Copy(Path.Combine(Golden.Case("clip_vision_tiny"), "model.safetensors"), Path.Combine(_dir, "model.safetensors"));
        var ex = Assert.Throws<InvalidInputException>(() => ClipTextModel.FromPretrained(_dir));
        Assert.Contains("missing keys", ex.Message);
        Assert.Contains("text_model.embeddings.token_embedding.weight", ex.Message);
        Assert.Contains("unexpected keys", ex.Message);
        Assert.Contains("vision_model.embeddings.class_embedding", ex.Message);
        Assert.Contains("model.safetensors", ex.Message);

        // A config of the other tower is refused before any weight is read.
        var cfg = Assert.Throws<InvalidInputException>(() => ClipTextConfig.Load(Path.Combine(Golden.Case("clip_vision_tiny"), "config.json")));
        Assert.Contains("clip_vision_model", cfg.Message);
    }

    [Fact]
    public void PoolingRuleDependsOnEosTokenId()
    {
        var config = ClipTextConfig.Load(Path.Combine(Golden.Case(CaseName), "config.json"));
        // Row 0: the largest id (998) precedes the first eos (500); row 1 has no eos at all (first-eos rule gives 0).
        var ids = tensor(new long[] { 3, 7, 998, 500, 4, 500, 0, 0, 1, 2, 6, 700, 9, 0, 0, 0 }, dtype: int64).view(2, 8);
        using var firstEos = new ClipTextModel(config with { EosTokenId = 500 });
        using var legacy = new ClipTextModel(config with { EosTokenId = 2 });
        var w = Weights();
        StateDict.LoadStrict(firstEos, w, "golden");
        StateDict.LoadStrict(legacy, w, "golden");
        Assert.Equal(new long[] { 3, 0 }, firstEos.TextModel.PoolPositions(ids).to(int64).data<long>().ToArray());
        Assert.Equal(new long[] { 2, 3 }, legacy.TextModel.PoolPositions(ids).to(int64).data<long>().ToArray());
        using var _ = no_grad();
        var o = firstEos.Forward(ids);
        Golden.AssertClose(o.LastHiddenState[1, 0], o.PooledOutput[1], 0, 0, "first eos pooled");
        var l = legacy.Forward(ids);
        Golden.AssertClose(l.LastHiddenState[1, 3], l.PooledOutput[1], 0, 0, "argmax pooled");
    }

    [Fact]
    public void RunsInFloat64()
    {
        // Masks and positions follow the model's dtype; transformers itself overflows here in float64.
        using var model = ClipTextModel.FromPretrained(Golden.Case(CaseName));
        model.to(float64);
        var inputs = Golden.Inputs(CaseName);
        using var _ = no_grad();
        var o = model.Forward(inputs["input_ids"], inputs["attention_mask"]);
        Assert.Equal(ScalarType.Float64, o.LastHiddenState.dtype);
        Golden.AssertClose(Golden.Outputs(CaseName)["last_hidden_state_with_attention_mask"], o.LastHiddenState, 1e-5, 0, "float64");
    }

    [Fact]
    public void BadInputIdsAreRefused()
    {
        using var model = ClipTextModel.FromPretrained(Golden.Case(CaseName));
        Assert.Contains("vocabulary", Assert.Throws<InvalidInputException>(() => model.Forward(tensor(new long[] { 1, 1000 }).view(1, 2))).Message);
        Assert.Contains("max_position_embeddings", Assert.Throws<InvalidInputException>(() => model.Forward(zeros(1, 78, dtype: int64))).Message);
        Assert.Contains("[batch, length]", Assert.Throws<InvalidInputException>(() => model.Forward(zeros(77, dtype: int64))).Message);
    }

    [Fact]
    public void TextTowerLoadsFromFullClipConfigFolder()
    {
        // The safety checker's CLIPConfig carries a text_config: its values and transformers' defaults for the rest.
        var c = ClipTextConfig.Load(Path.Combine(Golden.Case("safety_checker_tiny"), "config.json"));
        Assert.Equal((32, 2, 1000, "quick_gelu", 49407, 77), (c.HiddenSize, c.NumHiddenLayers, c.VocabSize, c.HiddenAct, c.EosTokenId, c.MaxPositionEmbeddings));
        var full = ClipConfig.Load(Path.Combine(Golden.Case("safety_checker_tiny"), "config.json"));
        Assert.Equal((24, 4, 32, 4), (full.ProjectionDim, full.VisionConfig.NumHiddenLayers, full.VisionConfig.ImageSize, full.VisionConfig.PatchSize));
    }
}
