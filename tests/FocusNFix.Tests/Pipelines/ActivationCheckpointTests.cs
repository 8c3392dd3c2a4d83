using FocusNFix.Lora;
using FocusNFix.Models;
using FocusNFix.Pipelines;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Pipelines;

public class ActivationCheckpointTests
{
    /// <summary>
    /// Gradients of a rank-4 LoRA and of the input latents through a checkpointed UNet call (as the loop's window makes
    /// it), and the VAE decode, with and without the fine-grained checkpoints: the same values, and the fine ones do
    /// recompute (one recompute per resnet/transformer of the UNet, and per decoder resnet).
    /// </summary>
    [Fact]
    public void FineCheckpointsRecomputeAndLeaveGradientsUnchanged()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_sd15"));
        foreach (var p in pipe.Unet.parameters().Concat(pipe.Vae!.parameters()).Concat(pipe.TextEncoder.parameters())) p.requires_grad = false;
        using var g = new Generator(3);
        using var lora = LoraNetwork.Attach(pipe.Unet, new LoraConfig { Rank = 4, Alpha = 4, InitStd = 0.1 }, g);
        foreach (var p in lora.TrainableParameters()) p.requires_grad = true;
        using var ehs = WithoutGrad(() => pipe.EncodePrompts(new[] { "a red circle" }));
        using var x0 = randn(new long[] { 1, 4, 16, 16 }, generator: g);
        using var t = tensor(500L);

        (List<Tensor> Grads, int Recomputes) Gradients(bool fine)
        {
            pipe.ActivationCheckpointing = fine;
            int recomputes = 0;
            GradientCheckpoint.OnRecompute = () => Interlocked.Increment(ref recomputes);
            try
            {
                using var scope = NewDisposeScope();
                foreach (var p in lora.TrainableParameters()) p.grad?.zero_();
                var x = x0.clone().requires_grad_(true);
                var eps = GradientCheckpoint.Apply((xs, c) => pipe.Unet.forward(xs, c[0], c[1]), x, t, ehs);
                var image = pipe.Decode(x - 0.1 * eps);
                GradientCheckpoint.Backward(image.square().mean());
                var grads = lora.TrainableParameters().Select(p => p.grad!.clone()).Append(x.grad!.clone()).ToList();
                foreach (var gr in grads) gr.DetachFromDisposeScope();
                return (grads, recomputes);
            }
            finally
            {
                GradientCheckpoint.OnRecompute = null;
                pipe.ActivationCheckpointing = false;
            }
        }

        var (plain, plainRecomputes) = Gradients(fine: false);
        var (fine, fineRecomputes) = Gradients(fine: true);
        Assert.Equal(1, plainRecomputes); // the outer UNet checkpoint only
        int unetUnits = pipe.Unet.modules().Count(m => m is ResnetBlock2D or Transformer2DModel);
        int decoderResnets = pipe.Vae.decoder.modules().Count(m => m is ResnetBlock2D);
        Assert.Equal(1 + unetUnits + decoderResnets, fineRecomputes);
        Assert.True(plain.Any(p => p.abs().max().item<float>() > 0), "the test must have non-zero gradients");
        for (int i = 0; i < plain.Count; i++)
            Golden.AssertClose(plain[i], fine[i], atol: 1e-6, rtol: 1e-5, name: $"gradient {i}");
        foreach (var gr in plain.Concat(fine)) gr.Dispose();
    }

    [Fact]
    public void WithoutGradientsTheCheckpointsAreNotUsed()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_sd15"));
        pipe.ActivationCheckpointing = true;
        int recomputes = 0;
        GradientCheckpoint.OnRecompute = () => recomputes++;
        try
        {
            using var _ = no_grad();
            using var r = pipe.Sample(new[] { "a red circle" }, new SampleOptions { Steps = 2 });
            Assert.True(r.Images.isfinite().all().item<bool>());
        }
        finally { GradientCheckpoint.OnRecompute = null; }
        Assert.Equal(0, recomputes);
        Assert.True(pipe.ActivationCheckpointing);
        pipe.ActivationCheckpointing = false;
        Assert.All(pipe.Unet.modules().OfType<ICheckpointable>(), m => Assert.Null(m.Checkpoint));
    }

    static Tensor WithoutGrad(Func<Tensor> f)
    {
        using var _ = no_grad();
        return f();
    }
}
