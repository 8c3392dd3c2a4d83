using System.Text.Json.Nodes;
using FocusNFix.IO;
using FocusNFix.Models;
using FocusNFix.Pipelines;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Models;

public class ModelSizeEstimateTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-size-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    static long Count(nn.Module m) => m.parameters().Sum(p => p.numel());

    static JsonConfig Config(string path) => JsonConfig.Load(path);

    [Theory]
    [InlineData("unet_tiny_sd15")]
    [InlineData("unet_tiny_sd2")]
    [InlineData("unet_tiny_sd2_b")]
    [InlineData("pipeline_tiny_sd15/unet")]
    [InlineData("pipeline_tiny_pixel/unet")]
    public void UNetEstimateIsTheBuiltModelsParameterCount(string folder)
    {
        var cfg = UNet2DConditionConfig.FromJson(Config(Path.Combine(Golden.Case(folder), "config.json")));
        using var model = new UNet2DConditionModel(cfg);
        Assert.Equal(Count(model), ModelSizeEstimate.Parameters(cfg));
    }

    [Fact]
    public void BundledBaseModelEstimatesAreExact()
    {
        var unet = UNet2DConditionConfig.FromJson(Config(Path.Combine(Golden.Root, "models/shapesworld/base/unet/config.json")));
        using (var m = new UNet2DConditionModel(unet)) Assert.Equal(Count(m), ModelSizeEstimate.Parameters(unet));
        var text = ClipTextConfig.Load(Path.Combine(Golden.Root, "models/shapesworld/base/text_encoder/config.json"));
        using (var m = new ClipTextModel(text)) Assert.Equal(Count(m), ModelSizeEstimate.Parameters(text));
    }

    [Theory]
    [InlineData("vae_tiny")]
    [InlineData("pipeline_tiny_sd15/vae")]
    public void VaeEstimateIsTheBuiltModelsParameterCount(string folder)
    {
        var cfg = AutoencoderKLConfig.FromJson(Config(Path.Combine(Golden.Case(folder), "config.json")));
        using var model = new AutoencoderKL(cfg);
        Assert.Equal(Count(model), ModelSizeEstimate.Parameters(cfg));
    }

    [Fact]
    public void ClipEstimatesAreTheBuiltModelsParameterCounts()
    {
        var text = ClipTextConfig.Load(Path.Combine(Golden.Case("clip_text_tiny"), "config.json"));
        using (var m = new ClipTextModel(text)) Assert.Equal(Count(m), ModelSizeEstimate.Parameters(text));
        var vision = ClipVisionConfig.Load(Path.Combine(Golden.Case("clip_vision_tiny"), "config.json"));
        using (var m = new ClipVisionModel(vision)) Assert.Equal(Count(m), ModelSizeEstimate.Parameters(vision));
    }

    /// <summary>A copy of a golden config.json in a temp folder with some keys replaced; returns the folder.</summary>
    string Edited(string goldenConfig, string name, params (string Key, JsonNode? Value)[] edits)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Golden.Case(goldenConfig), "config.json")))!.AsObject();
        foreach (var (k, v) in edits) json[k] = v;
        var dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        return dir;
    }

    static InvalidInputException Refused(Action load, string dir)
    {
        var e = Assert.Throws<InvalidInputException>(load);
        Assert.Contains(Path.Combine(dir, "config.json"), e.Message);
        return e;
    }

    [Fact]
    public void ImplausibleSizesAreRefusedBeforeAllocating()
    {
        // Before, this config asked the allocator for terabytes. No weights file exists: the refusal comes first.
        var unet = Edited("unet_tiny_sd15", "unet-huge", ("block_out_channels", new JsonArray(100000, 100000)));
        var e = Refused(() => UNet2DConditionModel.FromPretrained(unet), unet);
        Assert.Contains("block_out_channels [100000, 100000]", e.Message);
        Assert.Contains("GiB in float32", e.Message);
        Assert.Contains("UNet2DConditionModel", e.Message);

        var vae = Edited("vae_tiny", "vae-huge", ("block_out_channels", new JsonArray(65536, 65536)));
        Assert.Contains("block_out_channels [65536, 65536]", Refused(() => AutoencoderKL.FromPretrained(vae), vae).Message);

        var text = Edited("clip_text_tiny", "text-huge", ("hidden_size", 100000), ("intermediate_size", 400000));
        Assert.Contains("hidden_size 100000", Refused(() => ClipTextModel.FromPretrained(text), text).Message);
        var vocab = Edited("clip_text_tiny", "vocab-huge", ("vocab_size", 2_000_000_000));
        Assert.Contains("vocab_size 2000000000", Refused(() => ClipTextModel.FromPretrained(vocab), vocab).Message);

        var vision = Edited("clip_vision_tiny", "vision-huge", ("num_hidden_layers", 1_000_000));
        Assert.Contains("num_hidden_layers 1000000", Refused(() => ClipVisionModel.FromPretrained(vision), vision).Message);
    }

    [Theory]
    [InlineData("norm_num_groups", "0", "'norm_num_groups' must be a positive integer")]
    [InlineData("in_channels", "-4", "'in_channels' must be a positive integer")]
    [InlineData("conv_in_kernel", "-1", "'conv_in_kernel' must be a positive integer")]
    [InlineData("block_out_channels", "[32, 0]", "'block_out_channels' must hold positive integers, got [32, 0]")]
    [InlineData("layers_per_block", "0", "'layers_per_block' must hold positive integers")]
    [InlineData("attention_head_dim", "0", "must hold positive integers, got [0, 0]")]
    [InlineData("cross_attention_dim", "0", "'cross_attention_dim' must hold positive integers")]
    [InlineData("down_block_types", "[]", "down_block_types is empty")]
    [InlineData("norm_eps", "0", "'norm_eps' must be a positive finite number, got 0")]
    [InlineData("norm_eps", "-1e-5", "'norm_eps' must be a positive finite number")]
    [InlineData("norm_eps", "\"NaN\"", "'norm_eps' must be a positive finite number, got NaN")]
    [InlineData("norm_eps", "1e400", "'norm_eps' must be a positive finite number, got ")]
    public void UNetZeroNegativeAndNonFiniteValuesAreRefused(string key, string json, string expected)
    {
        var dir = Edited("unet_tiny_sd15", "unet-" + Guid.NewGuid().ToString("N"), (key, JsonNode.Parse(json)));
        Assert.Contains(expected, Refused(() => UNet2DConditionModel.FromPretrained(dir), dir).Message);
    }

    [Theory]
    [InlineData("latent_channels", "0", "'latent_channels' must be a positive integer")]
    [InlineData("norm_num_groups", "0", "'norm_num_groups' must be a positive integer")]
    [InlineData("layers_per_block", "-1", "'layers_per_block' must be a positive integer")]
    [InlineData("block_out_channels", "[]", "'block_out_channels' must be a non-empty list of positive integers")]
    [InlineData("scaling_factor", "\"NaN\"", "'scaling_factor' must be a positive finite number")]
    public void VaeZeroNegativeAndNonFiniteValuesAreRefused(string key, string json, string expected)
    {
        var dir = Edited("vae_tiny", "vae-" + Guid.NewGuid().ToString("N"), (key, JsonNode.Parse(json)));
        Assert.Contains(expected, Refused(() => AutoencoderKL.FromPretrained(dir), dir).Message);
    }

    [Theory]
    [InlineData("layer_norm_eps", "0")]
    [InlineData("layer_norm_eps", "\"NaN\"")]
    [InlineData("layer_norm_eps", "\"Infinity\"")]
    [InlineData("layer_norm_eps", "1e400")]
    public void ClipNonFiniteEpsilonIsRefused(string key, string json)
    {
        var dir = Edited("clip_text_tiny", "clip-" + Guid.NewGuid().ToString("N"), (key, JsonNode.Parse(json)));
        Assert.Contains("layer_norm_eps must be a positive finite number", Refused(() => ClipTextModel.FromPretrained(dir), dir).Message);
    }

    [Fact]
    public void ImageSizesAreCheckedBeforeSampling()
    {
        ModelSizeEstimate.CheckImageSize(8192, 64, 8);
        Assert.Contains("at most 8192", Assert.Throws<InvalidInputException>(() => ModelSizeEstimate.CheckImageSize(64, 8200, 8)).Message);
        Assert.Contains("multiples of 16", Assert.Throws<InvalidInputException>(() => ModelSizeEstimate.CheckImageSize(24, 32, 16)).Message);
        Assert.Contains("positive multiples", Assert.Throws<InvalidInputException>(() => ModelSizeEstimate.CheckImageSize(0, 32, 8)).Message);
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        Assert.Contains("at most 8192", Assert.Throws<InvalidInputException>(() =>
            pipe.Sample(new[] { "x" }, new SampleOptions { Steps = 1, Height = 65536, Width = 65536, Seeds = new long[] { 0 } })).Message);
    }
}
