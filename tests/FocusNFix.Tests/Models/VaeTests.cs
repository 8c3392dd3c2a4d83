using FocusNFix.Conformance;
using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Models;

public class VaeTests : IDisposable
{
    readonly ITestOutputHelper _out;
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-vae-").FullName;
    public VaeTests(ITestOutputHelper output) => _out = output;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void MatchesGoldenCase()
    {
        var result = VaeCase.Run(Golden.Case("vae_tiny"));
        var intermediates = Safetensors.ReadHeader(Path.Combine(Golden.Case("vae_tiny"), "intermediates.safetensors")).Entries.Select(e => e.Name);
        Assert.All(intermediates, k => Assert.Contains(k, result.Expected.Keys));
        foreach (var name in new[] { "latent_mean", "latent_logvar", "latent_std", "latent_sample", "decoded", "reconstruction" })
            Assert.Contains(name, result.Expected.Keys);
        foreach (var (key, expected) in result.Expected.OrderBy(kv => kv.Key))
        {
            var err = Golden.AssertClose(expected, result.Actual[key], 1e-4, 1e-4, $"vae_tiny/{key}");
            _out.WriteLine($"vae_tiny/{key}: max abs error {err:E2}");
        }
    }

    [Fact]
    public void GeneratorSampleDrawsTheReferenceNoise()
    {
        // diffusers: latent_dist.sample(generator=torch.Generator().manual_seed(3004)) drew posterior_noise.
        using var vae = AutoencoderKL.FromPretrained(Golden.Case("vae_tiny"));
        var inputs = Golden.Inputs("vae_tiny");
        var outputs = Golden.Outputs("vae_tiny");
        using var _ = no_grad();
        var posterior = vae.Encode(inputs["image"]);
        using var g = new Generator(3004);
        using var sample = posterior.Sample(g);
        Golden.AssertClose(outputs["latent_sample"], sample, 1e-4, 1e-4, "latent_sample from generator");
    }

    [Fact]
    public void DeprecatedAttentionKeysLoad()
    {
        var src = Golden.Case("vae_tiny");
        var weights = Safetensors.Load(Path.Combine(src, "diffusion_pytorch_model.safetensors"));
        var renamed = new Dictionary<string, Tensor>();
        foreach (var (k, v) in weights)
        {
            var key = k.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.").Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn.");
            // Some converted LDM checkpoints keep the 1×1-conv shape.
            renamed[key] = key.EndsWith("proj_attn.weight") ? v.unsqueeze(-1).unsqueeze(-1) : v;
        }
        Assert.Contains("encoder.mid_block.attentions.0.query.weight", renamed.Keys);
        Safetensors.Save(Path.Combine(_dir, "diffusion_pytorch_model.safetensors"), renamed, new Dictionary<string, string> { ["format"] = "pt" });
        File.Copy(Path.Combine(src, "config.json"), Path.Combine(_dir, "config.json"));

        using var vae = AutoencoderKL.FromPretrained(_dir);
        using var _ = no_grad();
        using var decoded = vae.Decode(Golden.Inputs("vae_tiny")["latent"]);
        Golden.AssertClose(Golden.Outputs("vae_tiny")["decoded"], decoded, 1e-4, 1e-4, "decoded after key conversion");
    }

    static AutoencoderKLConfig Config(string json) => AutoencoderKLConfig.FromJson(JsonConfig.Parse(json, "vae/config.json"));

    const string SmallConfig = """
        { "in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [8, 16, 16], "layers_per_block": 1,
          "norm_num_groups": 4, "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
          "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"], "scaling_factor": 0.13025 }
        """;

    [Fact]
    public void RandomInitGivesFiniteOutputAndGradientsFlow()
    {
        torch.manual_seed(3);
        using var vae = new AutoencoderKL(Config(SmallConfig));
        Assert.Equal(4, vae.ScaleFactor);
        Assert.Equal(0.13025, vae.Config.ScalingFactor);
        using var image = rand(2, 3, 16, 24) * 2 - 1;
        var posterior = vae.Encode(image);
        Assert.Equal(new long[] { 2, 4, 4, 6 }, posterior.Mean.shape);
        using var decoded = vae.Decode(posterior.Sample(randn(2, 4, 4, 6)));
        Assert.Equal(new long[] { 2, 3, 16, 24 }, decoded.shape);
        Assert.True(decoded.isfinite().all().item<bool>());
        decoded.sum().backward();
        var grad = vae.encoder.mid_block.attentions![0].to_q.weight!.grad;
        Assert.NotNull(grad);
        Assert.True(grad!.isfinite().all().item<bool>() && grad.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void UnknownBlockTypeIsRefused()
    {
        var e = Assert.Throws<InvalidInputException>(() => Config(SmallConfig.Replace("[\"DownEncoderBlock2D\", \"DownEncoderBlock2D\",", "[\"AttnDownEncoderBlock2D\", \"DownEncoderBlock2D\",")));
        Assert.Contains("vae/config.json", e.Message);
        Assert.Contains("AttnDownEncoderBlock2D", e.Message);
        Assert.Contains("DownEncoderBlock2D", e.Message);
    }

    [Fact]
    public void MissingWeightIsNamed()
    {
        var src = Golden.Case("vae_tiny");
        using var vae = new AutoencoderKL(AutoencoderKLConfig.FromJson(JsonConfig.Load(Path.Combine(src, "config.json"))));
        var weights = Safetensors.Load(Path.Combine(src, "diffusion_pytorch_model.safetensors"));
        weights.Remove("decoder.mid_block.attentions.0.group_norm.bias");
        var e = Assert.Throws<InvalidInputException>(() => StateDict.LoadStrict(vae, weights, "vae.safetensors"));
        Assert.Contains("decoder.mid_block.attentions.0.group_norm.bias", e.Message);
    }
}
