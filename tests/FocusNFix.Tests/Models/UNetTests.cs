using FocusNFix.Conformance;
using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Models;

public class UNetTests
{
    readonly ITestOutputHelper _out;
    public UNetTests(ITestOutputHelper output) => _out = output;

    [Theory]
    [InlineData("unet_tiny_sd15")]
    [InlineData("unet_tiny_sd2")]
    [InlineData("unet_tiny_sd2_b")]
    public void MatchesGoldenCase(string name)
    {
        var result = UNetCase.Run(Golden.Case(name));
        var intermediates = Safetensors.ReadHeader(Path.Combine(Golden.Case(name), "intermediates.safetensors")).Entries.Select(e => e.Name);
        // Every reference hook point must have been compared, not silently skipped.
        Assert.All(intermediates, k => Assert.Contains(k, result.Expected.Keys));
        Assert.Contains("sample", result.Expected.Keys);
        Assert.Contains("sample_scalar_timestep", result.Expected.Keys);
        foreach (var (key, expected) in result.Expected.OrderBy(kv => kv.Key))
        {
            var err = Golden.AssertClose(expected, result.Actual[key], 1e-4, 1e-4, $"{name}/{key}");
            _out.WriteLine($"{name}/{key}: max abs error {err:E2}");
        }
    }

    [Fact]
    public void LoraFreeOutputOfLoraCaseMatches()
    {
        using var model = UNet2DConditionModel.FromPretrained(Golden.Case("unet_tiny_sd15"));
        var inputs = Golden.Inputs("lora_peft_names");
        var outputs = Golden.Outputs("lora_peft_names");
        using var _ = no_grad();
        using var actual = model.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]);
        var err = Golden.AssertClose(outputs["sample_no_lora"], actual, 1e-4, 1e-4, "lora_peft_names/sample_no_lora");
        _out.WriteLine($"sample_no_lora: max abs error {err:E2}");
    }

    [Fact]
    public void NumericTimestepsMatchTensorTimesteps()
    {
        using var model = UNet2DConditionModel.FromPretrained(Golden.Case("unet_tiny_sd15"));
        var inputs = Golden.Inputs("unet_tiny_sd15");
        var outputs = Golden.Outputs("unet_tiny_sd15");
        using var _ = no_grad();
        // timestep_scalar is 999: as a C# number, as a float32 0-d tensor and as a [1] tensor.
        using var fromNumber = model.forward(inputs["sample"], 999.0, inputs["encoder_hidden_states"]);
        using var fromFloat = model.forward(inputs["sample"], tensor(999f), inputs["encoder_hidden_states"]);
        using var fromOne = model.forward(inputs["sample"], tensor(new long[] { 999 }), inputs["encoder_hidden_states"]);
        Golden.AssertClose(outputs["sample_scalar_timestep"], fromNumber, 1e-4, 1e-4, "number");
        Golden.AssertClose(outputs["sample_scalar_timestep"], fromFloat, 1e-4, 1e-4, "float tensor");
        Golden.AssertClose(outputs["sample_scalar_timestep"], fromOne, 1e-4, 1e-4, "[1] tensor");
    }

    static UNet2DConditionConfig Config(string json) => UNet2DConditionConfig.FromJson(JsonConfig.Parse(json, "test/config.json"));

    const string PixelConfig = """
        { "in_channels": 3, "out_channels": 3, "sample_size": 12, "block_out_channels": [16, 32], "layers_per_block": 1,
          "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"], "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
          "attention_head_dim": [2, 4], "cross_attention_dim": 8, "norm_num_groups": 8, "use_linear_projection": true,
          "transformer_layers_per_block": [1, 2] }
        """;

    [Fact]
    public void RandomInitGivesFiniteOutputAndGradientsFlow()
    {
        torch.manual_seed(1);
        using var model = new UNet2DConditionModel(Config(PixelConfig));
        using var sample = randn(2, 3, 10, 14);
        using var ehs = randn(2, 5, 8);
        using var t = tensor(new long[] { 3, 700 });
        using var y = model.forward(sample, t, ehs);
        Assert.Equal(new long[] { 2, 3, 10, 14 }, y.shape);
        Assert.True(y.isfinite().all().item<bool>());
        y.sum().backward();
        var attn = ((CrossAttnDownBlock2D)model.down_blocks[1]).attentions[0].transformer_blocks[0].attn1;
        var grad = attn.to_q.weight!.grad;
        Assert.NotNull(grad);
        Assert.True(grad!.isfinite().all().item<bool>());
        Assert.True(grad.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void OddSpatialSizeUsesSkipSizes()
    {
        // 9×7 is not a multiple of the 2× total downscale: the upsampler must target the skip's size.
        torch.manual_seed(2);
        using var model = new UNet2DConditionModel(Config(PixelConfig));
        using var _ = no_grad();
        using var y = model.forward(randn(1, 3, 9, 7), tensor(5L), randn(1, 3, 8));
        Assert.Equal(new long[] { 1, 3, 9, 7 }, y.shape);
        Assert.True(y.isfinite().all().item<bool>());
    }

    [Fact]
    public void StateDictKeysAreTheReferenceKeys()
    {
        using var model = new UNet2DConditionModel(UNet2DConditionConfig.FromJson(JsonConfig.Load(Path.Combine(Golden.Case("unet_tiny_sd2_b"), "config.json"))));
        var ours = model.state_dict().Keys.OrderBy(k => k, StringComparer.Ordinal);
        var theirs = Safetensors.ReadHeader(Path.Combine(Golden.Case("unet_tiny_sd2_b"), "diffusion_pytorch_model.safetensors")).Entries
            .Select(e => e.Name).OrderBy(k => k, StringComparer.Ordinal);
        Assert.Equal(theirs, ours);
    }

    [Fact]
    public void UnknownBlockTypeIsRefusedWithSupportedList()
    {
        var json = PixelConfig.Replace("\"DownBlock2D\", \"CrossAttnDownBlock2D\"", "\"DownBlock2D\", \"SimpleCrossAttnDownBlock2D\"");
        var e = Assert.Throws<InvalidInputException>(() => Config(json));
        Assert.Contains("test/config.json", e.Message);
        Assert.Contains("SimpleCrossAttnDownBlock2D", e.Message);
        Assert.Contains("CrossAttnDownBlock2D, DownBlock2D", e.Message);

        var up = Assert.Throws<InvalidInputException>(() => Config(PixelConfig.Replace("\"CrossAttnUpBlock2D\", \"UpBlock2D\"", "\"AttnUpBlock2D\", \"UpBlock2D\"")));
        Assert.Contains("AttnUpBlock2D", up.Message);
        var mid = Assert.Throws<InvalidInputException>(() => Config(PixelConfig.Replace("{", "{ \"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\",")));
        Assert.Contains("UNetMidBlock2DSimpleCrossAttn", mid.Message);
    }

    [Fact]
    public void UnsupportedOptionsAndBadListsAreRefused()
    {
        var e1 = Assert.Throws<InvalidInputException>(() => Config(PixelConfig.Replace("{", "{ \"class_embed_type\": \"timestep\",")));
        Assert.Contains("class_embed_type", e1.Message);
        var e2 = Assert.Throws<InvalidInputException>(() => Config(PixelConfig.Replace("\"attention_head_dim\": [2, 4]", "\"attention_head_dim\": [2, 4, 8]")));
        Assert.Contains("attention_head_dim", e2.Message);
    }

    [Fact]
    public void NumAttentionHeadsTakesPrecedence()
    {
        var cfg = Config(PixelConfig.Replace("{", "{ \"num_attention_heads\": 8,"));
        Assert.Equal(new[] { 8, 8 }, cfg.NumAttentionHeads);
        Assert.Equal(new[] { 2, 4 }, Config(PixelConfig).NumAttentionHeads);
    }

    [Fact]
    public void WeightErrorsNameTheKeys()
    {
        var dir = Golden.Case("unet_tiny_sd15");
        using var model = new UNet2DConditionModel(UNet2DConditionConfig.FromJson(JsonConfig.Load(Path.Combine(dir, "config.json"))));
        var weights = Safetensors.Load(Path.Combine(dir, "diffusion_pytorch_model.safetensors"));

        const string victim = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight";
        var missing = new Dictionary<string, Tensor>(weights);
        missing.Remove(victim);
        var e = Assert.Throws<InvalidInputException>(() => StateDict.LoadStrict(model, missing, "unet.safetensors"));
        Assert.Contains("missing", e.Message);
        Assert.Contains(victim, e.Message);

        var extra = new Dictionary<string, Tensor>(weights) { ["mid_block.attentions.0.bogus.weight"] = zeros(3) };
        e = Assert.Throws<InvalidInputException>(() => StateDict.LoadStrict(model, extra, "unet.safetensors"));
        Assert.Contains("unexpected", e.Message);
        Assert.Contains("mid_block.attentions.0.bogus.weight", e.Message);

        var wrong = new Dictionary<string, Tensor>(weights) { ["conv_in.weight"] = zeros(32, 3, 3, 3) };
        e = Assert.Throws<InvalidInputException>(() => StateDict.LoadStrict(model, wrong, "unet.safetensors"));
        Assert.Contains("conv_in.weight", e.Message);
        Assert.Contains("[32, 3, 3, 3]", e.Message);
    }
}

public class UNetAdapterHookTests
{
    [Fact]
    public void ProjectionDeltaAddsToTheProjection()
    {
        const string json = """
            { "in_channels": 4, "out_channels": 4, "block_out_channels": [16, 32], "layers_per_block": 1, "attention_head_dim": 2,
              "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
              "cross_attention_dim": 8, "norm_num_groups": 8 }
            """;
        var cfg = UNet2DConditionConfig.FromJson(JsonConfig.Parse(json, "test/config.json"));
        torch.manual_seed(5);
        using var model = new UNet2DConditionModel(cfg);
        using var _ = no_grad();
        using var sample = randn(1, 4, 8, 8);
        using var ehs = randn(1, 6, 8);
        using var t = tensor(10L);
        var attentions = model.modules().OfType<Attention>().ToList();
        Assert.Equal(8, attentions.Count);  // (1 down + 1 mid + 2 up transformers) × (attn1, attn2)

        // A delta of 0.5·W_v·x on to_v must equal scaling W_v by 1.5: the same merge a LoRA performs.
        foreach (var a in attentions)
        {
            var w = a.to_v.weight!;
            a.ProjectionDelta = (name, x) => name == "to_v" ? nn.functional.linear(x, w * 0.5) : null;
        }
        using var hooked = model.forward(sample, t, ehs);
        foreach (var a in attentions)
        {
            a.ProjectionDelta = null;
            a.to_v.weight!.mul_(1.5);
        }
        using var merged = model.forward(sample, t, ehs);
        Golden.AssertClose(merged, hooked, 1e-5, 1e-5, "delta vs merged");
    }
}
