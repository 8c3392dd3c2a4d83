using FocusNFix.Conformance;
using FocusNFix.Lora;
using FocusNFix.Models;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static FocusNFix.Tests.Lora.LoraTestUtil;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Lora;

public class LoraNetworkTests
{
    readonly ITestOutputHelper _out;
    public LoraNetworkTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void NewLoraCoversEveryAttentionProjectionAndChangesNothing()
    {
        using var unet = BaseUnet();
        var inputs = Golden.Inputs(Case);
        using var before = Forward(unet, inputs);
        using var g = new Generator(1);
        using var lora = LoraNetwork.Attach(unet, new LoraConfig(), g);
        // unet_tiny_sd15: (2 down + 1 mid + 3 up transformers) x (attn1, attn2) x 4 projections.
        Assert.Equal(48, lora.Adapters.Count);
        Assert.Equal(96, lora.TrainableParameters().Count());
        foreach (var a in lora.Adapters)
        {
            Assert.Equal(4, a.Rank);
            Assert.Equal(0, a.lora_B.abs().max().item<float>());
            // PEFT's kaiming_uniform_(a=√5): |A| ≤ 1/√in, and not degenerate.
            double bound = 1 / Math.Sqrt(a.lora_A.shape[1]);
            Assert.True(a.lora_A.abs().max().item<float>() <= bound + 1e-7, a.ModulePath);
            Assert.True(a.lora_A.abs().max().item<float>() > bound / 4, a.ModulePath);
        }
        Assert.DoesNotContain(lora.Modules, m => m.StartsWith("vae"));
        using var after = Forward(unet, inputs);
        Assert.True(before.eq(after).all().item<bool>(), $"zero-initialised LoRA changed the output by {MaxDiff(before, after):E2}");

        // Same seed, same A; InitStd gives N(0, std²).
        using var g2 = new Generator(1);
        using var again = LoraNetwork.Attach(UNet2DConditionModel.FromPretrained(Golden.Case("unet_tiny_sd15")), new LoraConfig(), g2);
        Assert.Equal(0, MaxDiff(lora.Adapters[7].lora_A, again.Adapters[7].lora_A));
        using var g3 = new Generator(1);
        using var normal = LoraNetwork.Attach(UNet2DConditionModel.FromPretrained(Golden.Case("unet_tiny_sd15")), new LoraConfig { Rank = 8, InitStd = 0.125 }, g3);
        var all = cat(normal.Adapters.Select(a => a.lora_A.flatten()).ToList());
        Assert.InRange(all.std().item<float>(), 0.11, 0.14);
        Assert.Equal(8, normal.Adapters[0].Rank);
    }

    [Fact]
    public void TargetListSelectsProjections()
    {
        using var unet = BaseUnet();
        using var lora = LoraNetwork.Attach(unet, new LoraConfig { TargetModules = new[] { "attn2.to_k", "to_v" } });
        Assert.Equal(6 + 12, lora.Adapters.Count);
        Assert.All(lora.Modules, m => Assert.True(m.EndsWith("attn2.to_k") || m.EndsWith(".to_v"), m));
        var e = Assert.Throws<InvalidInputException>(() => LoraNetwork.Attach(unet, new LoraConfig { TargetModules = new[] { "to_q", "ff.net.2" } }));
        Assert.Contains("'ff.net.2'", e.Message);
        Assert.Throws<InvalidInputException>(() => LoraNetwork.Attach(unet, new LoraConfig { Rank = 0 }));
    }

    [Fact]
    public void MergedUnmergedAndHookedForwardsAgree()
    {
        using var unet = BaseUnet();
        var inputs = Golden.Inputs(Case);
        using var baseOut = Forward(unet, inputs);
        using var lora = LoraNetwork.Attach(unet, new LoraConfig { Rank = 4, Alpha = 8 }, new Generator(3));
        RandomizeB(lora, 4);
        using var hooked = Forward(unet, inputs);
        Assert.True(MaxDiff(hooked, baseOut) > 1e-2, "the LoRA should change the output");
        lora.Scale = 0;
        using var off = Forward(unet, inputs);
        Assert.True(off.eq(baseOut).all().item<bool>(), "scale 0 must give the base output exactly");
        lora.Scale = 1;
        lora.Merge();
        Assert.True(lora.IsMerged);
        using var merged = Forward(unet, inputs);
        double err = MaxDiff(hooked, merged);
        _out.WriteLine($"hooked vs merged: {err:E2}");
        Assert.True(err < 1e-5, $"hooked vs merged {err:E2}");

        // Changing the scale while merged re-merges; scale 0.5 hooked must agree.
        lora.Scale = 0.5;
        using var merged05 = Forward(unet, inputs);
        lora.Unmerge();
        using var hooked05 = Forward(unet, inputs);
        Assert.True(MaxDiff(hooked05, merged05) < 1e-5);
        Assert.True(MaxDiff(hooked05, hooked) > 1e-3);

        lora.Scale = 1;
        lora.Detach();
        using var detached = Forward(unet, inputs);
        Assert.True(MaxDiff(detached, baseOut) < 1e-5, "merge/unmerge must give the base weights back");
        Assert.Throws<InvalidOperationException>(() => lora.Unmerge());
    }

    [Fact]
    public void GoldenFilesReproduceTheReferenceThroughHooksAndMerge()
    {
        var result = LoraCase.Run(CaseDir);
        // sample_no_lora (+ after_unmerge) and 4 files x 2 scales x (hook, merged).
        Assert.Equal(2 + 4 * 2 * 2, result.Expected.Count);
        foreach (var (file, _) in GoldenFiles)
            foreach (var s in new[] { "1", "0.5" })
                foreach (var path in new[] { "hook", "merged" })
                    Assert.Contains($"{file}:sample_lora_scale_{s}:{path}", result.Expected.Keys);
        foreach (var (key, expected) in result.Expected.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            var err = Golden.AssertClose(expected, result.Actual[key], 1e-4, 0, key);
            _out.WriteLine($"{key}: max abs error {err:E2}");
        }
    }

    [Fact]
    public void GoldenLoraInFloat64FollowsTheUnetDtype()
    {
        using var unet = BaseUnet();
        unet.to(float64);
        using var lora = LoraNetwork.Load(unet, GoldenFile("lora_peft_format.safetensors"), 0.5);
        Assert.All(lora.TrainableParameters(), p => Assert.Equal(float64, p.dtype));
        var inputs = Golden.Inputs(Case);
        using var _ = no_grad();
        using var y = unet.forward(inputs["sample"].to(float64), inputs["timestep"], inputs["encoder_hidden_states"].to(float64));
        Assert.Equal(float64, y.dtype);
        Golden.AssertClose(Golden.Outputs(Case)["sample_lora_scale_0.5"], y, 1e-4, 0, "float64 hook");
    }

    [Fact]
    public void GradientsReachOnlyTheLoraParameters()
    {
        using var unet = BaseUnet();
        LoraNetwork.FreezeBase(unet);
        using var lora = LoraNetwork.Attach(unet, new LoraConfig(), new Generator(9));
        unet.train();
        var inputs = Golden.Inputs(Case);
        double Step()
        {
            foreach (var p in lora.TrainableParameters()) p.grad?.zero_();
            using var y = unet.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]);
            using var loss = y.square().mean();
            loss.backward();
            return loss.item<float>();
        }
        Step();
        // With B = 0, dL/dA = 0 exactly and dL/dB ≠ 0.
        foreach (var a in lora.Adapters)
        {
            Assert.True(a.lora_B.grad is not null && a.lora_B.grad.abs().max().item<float>() > 0, $"{a.ModulePath}.lora_B has no gradient");
            Assert.True(a.lora_A.grad is null || a.lora_A.grad.abs().max().item<float>() == 0, $"{a.ModulePath}.lora_A");
        }
        Assert.All(unet.parameters(), p => Assert.Null(p.grad));
        RandomizeB(lora, 10);
        Step();
        foreach (var a in lora.Adapters)
            Assert.True(a.lora_A.grad is not null && a.lora_A.grad.abs().max().item<float>() > 0, $"{a.ModulePath}.lora_A has no gradient");
        Assert.All(unet.parameters(), p => Assert.Null(p.grad));
    }

    [Fact]
    public void StateDictRoundTripsAndIsStrict()
    {
        using var unet = BaseUnet();
        using var lora = LoraNetwork.Attach(unet, new LoraConfig(), new Generator(11));
        RandomizeB(lora, 12);
        var saved = lora.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        Assert.Equal(96, saved.Count);
        Assert.Contains("mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.lora_B.weight", saved.Keys);
        var paramsBefore = lora.TrainableParameters().ToList();
        RandomizeB(lora, 13);
        lora.LoadStateDict(saved);
        foreach (var (k, t) in lora.StateDict()) Assert.Equal(0, MaxDiff(saved[k], t));
        // The Parameter objects an optimiser holds stay the same.
        Assert.True(paramsBefore.Zip(lora.TrainableParameters()).All(p => ReferenceEquals(p.First, p.Second)));

        saved.Remove("mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.lora_B.weight");
        var e = Assert.Throws<InvalidInputException>(() => lora.LoadStateDict(saved, "ckpt.safetensors"));
        Assert.Contains("ckpt.safetensors", e.Message);
        Assert.Contains("missing: mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.lora_B.weight", e.Message);
    }

    [Fact]
    public void TwoNetworksChainAndDetachInReverseOrder()
    {
        using var unet = BaseUnet();
        var inputs = Golden.Inputs(Case);
        using var baseOut = Forward(unet, inputs);
        using var first = LoraNetwork.Load(unet, GoldenFile("lora_peft_format.safetensors"), 0.5);
        using var second = LoraNetwork.Load(unet, GoldenFile("lora_kohya_format.safetensors"), 0.5);
        using var both = Forward(unet, inputs);
        // Two half-strength copies of the same LoRA = one at full strength.
        Golden.AssertClose(Golden.Outputs(Case)["sample_lora_scale_1"], both, 1e-4, 0, "two stacked LoRAs");
        Assert.Throws<InvalidOperationException>(() => first.Detach());
        second.Detach();
        first.Detach();
        using var after = Forward(unet, inputs);
        Assert.True(after.eq(baseOut).all().item<bool>());
    }

    [Fact]
    public void DisposingTheNetworkLeavesTheUnetIntact()
    {
        using var unet = BaseUnet();
        var inputs = Golden.Inputs(Case);
        using var baseOut = Forward(unet, inputs);
        var lora = LoraNetwork.Load(unet, GoldenFile("lora_peft_format.safetensors"));
        // Only the adapters are children: the UNet's Linear layers must not be adopted (and disposed) with them.
        Assert.Equal(48, lora.named_modules().Count());
        Assert.Equal(96, lora.parameters().Count());
        lora.Dispose();
        Assert.All(unet.modules().OfType<Attention>(), a => Assert.Null(a.ProjectionDelta));
        using var after = Forward(unet, inputs);
        Assert.True(after.eq(baseOut).all().item<bool>());
    }

    [Fact]
    public void NetworkMovesWithTo()
    {
        using var unet = BaseUnet();
        using var lora = LoraNetwork.Load(unet, GoldenFile("lora_peft_format.safetensors"), 0.5);
        unet.to(float64);
        lora.to(float64);
        Assert.All(lora.Adapters, a => Assert.Equal(float64, a.lora_A.dtype));
        Assert.All(lora.TrainableParameters(), p => Assert.Equal(float64, p.dtype));
        Assert.All(lora.TrainableParameters(), p => Assert.True(p.requires_grad));
        var inputs = Golden.Inputs(Case);
        using var _ = no_grad();
        using var y = unet.forward(inputs["sample"].to(float64), inputs["timestep"], inputs["encoder_hidden_states"].to(float64));
        Golden.AssertClose(Golden.Outputs(Case)["sample_lora_scale_0.5"], y, 1e-4, 0, "after .to(float64)");
    }
}
