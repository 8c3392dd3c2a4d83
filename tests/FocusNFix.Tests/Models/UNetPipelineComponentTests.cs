using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Models;

/// <summary>The UNet and VAE of the golden pipeline folders, checked on the first recorded denoising step and on decoding.</summary>
public class UNetPipelineComponentTests
{
    readonly ITestOutputHelper _out;
    public UNetPipelineComponentTests(ITestOutputHelper output) => _out = output;

    [Theory]
    [InlineData("pipeline_tiny_sd15", "pipeline_tiny_sd15_run", "ddim")]
    [InlineData("pipeline_tiny_sd15", "pipeline_tiny_sd15_run", "euler")]  // float32 timestep
    [InlineData("pipeline_tiny_pixel", "pipeline_tiny_pixel_run", "ddim")]
    public void UNetReproducesFirstGuidedStep(string pipeline, string run, string sampler)
    {
        using var unet = UNet2DConditionModel.FromPretrained(Path.Combine(Golden.Case(pipeline), "unet"));
        var o = Golden.Outputs(run);
        using var _ = no_grad();
        // Classifier-free guidance batch: unconditional embeddings first.
        using var ehs = cat(new[] { o["negative_prompt_embeds"], o["prompt_embeds"] }, 0);
        using var actual = unet.forward(o[$"{sampler}.step.0.latent_model_input"], o[$"{sampler}.step.0.timestep"], ehs);
        var err = Golden.AssertClose(o[$"{sampler}.step.0.unet_output"], actual, 1e-4, 1e-4, $"{run}/{sampler}.step.0.unet_output");
        _out.WriteLine($"{run}/{sampler}.step.0.unet_output: max abs error {err:E2} (timestep dtype {o[$"{sampler}.step.0.timestep"].dtype})");
    }

    [Fact]
    public void VaeDecodesPipelineLatents()
    {
        using var vae = AutoencoderKL.FromPretrained(Path.Combine(Golden.Case("pipeline_tiny_sd15"), "vae"));
        Assert.Equal(2, vae.ScaleFactor);
        var o = Golden.Outputs("pipeline_tiny_sd15_run");
        using var _ = no_grad();
        using var image = vae.Decode(o["ddim.decoder_input"]);
        var err = Golden.AssertClose(o["ddim.image_raw"], image, 1e-4, 1e-4, "ddim.image_raw");
        _out.WriteLine($"ddim.image_raw: max abs error {err:E2}");
    }
}
