using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Models;
using TorchSharp;
using Xunit;
using static FocusNFix.Tests.Lora.LoraTestUtil;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Lora;

public class LoraFileTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-lora-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    [Fact]
    public void SavedKeyNamesEqualTheGoldenListsExactly()
    {
        using var unet = BaseUnet();
        foreach (var (file, format) in GoldenFiles)
        {
            using var lora = LoraNetwork.Load(unet, GoldenFile(file));
            var outPath = Path.Combine(_tmp, file);
            lora.Save(outPath, format);
            Assert.Equal(GoldenKeys(file).OrderBy(k => k, StringComparer.Ordinal), KeysOf(outPath).OrderBy(k => k, StringComparer.Ordinal));
            Assert.Equal(format, LoraFile.Read(GoldenFile(file), unet.named_modules().Select(m => m.name)).Format);
            lora.Detach();
        }

        // The named helpers, from a PEFT-loaded network.
        using var peft = LoraNetwork.Load(unet, GoldenFile("lora_peft_format.safetensors"));
        var p = Path.Combine(_tmp, "peft.safetensors");
        var k = Path.Combine(_tmp, "kohya.safetensors");
        peft.SavePeft(p);
        peft.SaveKohya(k);
        Assert.Equal(GoldenKeys("lora_peft_format.safetensors").Order(StringComparer.Ordinal), KeysOf(p).Order(StringComparer.Ordinal));
        Assert.Equal(GoldenKeys("lora_kohya_format.safetensors").Order(StringComparer.Ordinal), KeysOf(k).Order(StringComparer.Ordinal));
        var pm = Safetensors.ReadHeader(p).Metadata;
        Assert.Equal("pt", pm["format"]);
        Assert.Equal("4", pm[LoraFile.RankKey]);
        Assert.Equal("4", pm[LoraFile.AlphaKey]);
        Assert.Equal("[\"to_q\",\"to_k\",\"to_v\",\"to_out.0\"]", pm[LoraFile.TargetsKey]);
        var km = Safetensors.ReadHeader(k).Metadata;
        Assert.Equal("4", km["ss_network_dim"]);
        Assert.Equal("4", km["ss_network_alpha"]);
        var alpha = Safetensors.ReadHeader(k).Entries.First(e => e.Name.EndsWith(".alpha"));
        Assert.Equal("F32", alpha.DType);
        Assert.Empty(alpha.Shape);
    }

    [Fact]
    public void ExportedFilesReloadToTheSameWeights()
    {
        using var unet = BaseUnet();
        using var lora = LoraNetwork.Attach(unet, new LoraConfig { Rank = 3, Alpha = 6, TargetModules = new[] { "attn1.to_q", "to_out.0" } }, new Generator(21));
        RandomizeB(lora, 22);
        var inputs = Golden.Inputs(Case);
        lora.Scale = 0.7;
        using var reference = Forward(unet, inputs);
        var state = lora.StateDict();
        lora.Detach();
        foreach (var format in Enum.GetValues<LoraFormat>())
        {
            var path = Path.Combine(_tmp, $"{format}.safetensors");
            lora.Save(path, format);
            using var back = LoraNetwork.Load(unet, path, 0.7);
            Assert.Equal(lora.Modules, back.Modules);
            foreach (var (key, t) in back.StateDict()) Assert.Equal(0, MaxDiff(state[key], t));
            Assert.All(back.Adapters, a => Assert.Equal(6, a.Alpha));
            Assert.Equal(3, back.Config.Rank);
            Assert.Equal(6, back.Config.Alpha);
            Assert.Equal(new[] { "attn1.to_q", "to_out.0" }, back.Config.TargetModules);
            using var y = Forward(unet, inputs);
            Assert.True(y.eq(reference).all().item<bool>(), $"{format}: reloaded LoRA differs by {MaxDiff(y, reference):E2}");
            back.Detach();
        }
    }

    [Fact]
    public void KohyaAlphaScalesTheUpdate()
    {
        var names = BaseUnet().named_modules().Select(m => m.name).ToList();
        var peft = LoraFile.Read(GoldenFile("lora_peft_format.safetensors"), names).Layers.ToDictionary(l => l.Module);
        var kohya = LoraFile.Read(GoldenFile("lora_kohya_format.safetensors"), names);
        Assert.Equal("8", kohya.Metadata["ss_network_alpha"]);
        Assert.Equal(48, kohya.Layers.Count);
        foreach (var l in kohya.Layers)
        {
            var p = peft[l.Module];
            Assert.Equal(8, l.Alpha);
            Assert.Equal(4, p.Alpha);
            Assert.Equal(0, MaxDiff(l.Down, p.Down));
            Assert.Equal(0, MaxDiff(l.Up * 2, p.Up));
            using var dk = l.Up.matmul(l.Down) * (l.Alpha / l.Rank);
            using var dp = p.Up.matmul(p.Down) * (p.Alpha / p.Rank);
            Assert.True(MaxDiff(dk, dp) < 1e-6);
        }

        // alpha = 2r with B halved gives the same forward as alpha = r.
        using var unet = BaseUnet();
        var inputs = Golden.Inputs(Case);
        using var a = LoraNetwork.Attach(unet, new LoraConfig { Rank = 2, Alpha = 2 }, new Generator(31));
        RandomizeB(a, 32);
        using var ya = Forward(unet, inputs);
        var halved = a.StateDict().ToDictionary(kv => kv.Key, kv => kv.Key.EndsWith("lora_B.weight") ? kv.Value / 2 : kv.Value.clone());
        a.Detach();
        using var b = LoraNetwork.Attach(unet, new LoraConfig { Rank = 2, Alpha = 4 });
        b.LoadStateDict(halved);
        using var yb = Forward(unet, inputs);
        Assert.True(MaxDiff(ya, yb) < 1e-6, $"alpha 2r with B/2: {MaxDiff(ya, yb):E2}");
    }

    [Fact]
    public void FileForADifferentUnetNamesTheLayer()
    {
        // pipeline_tiny_sd15's UNet has one layer per block: the golden LoRA's second attention does not exist there.
        using var other = UNet2DConditionModel.FromPretrained(Path.Combine(Golden.Case("pipeline_tiny_sd15"), "unet"));
        foreach (var (file, _) in GoldenFiles)
        {
            var e = Assert.Throws<InvalidInputException>(() => LoraNetwork.Load(other, GoldenFile(file)));
            Assert.Contains(file, e.Message);
            Assert.True(e.Message.Contains("down_blocks.0.attentions.1.") || e.Message.Contains("down_blocks_0_attentions_1_"), e.Message);
            Assert.Contains("different model", e.Message);
        }
        Assert.All(other.modules().OfType<Attention>(), a => Assert.Null(a.ProjectionDelta));

        // Same names, other widths.
        using var unet = BaseUnet();
        var t = Safetensors.Load(GoldenFile("lora_peft_format.safetensors"));
        const string key = "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight";
        t[key] = zeros(4, 768);
        var bad = Path.Combine(_tmp, "wide.safetensors");
        Safetensors.Save(bad, t);
        var e2 = Assert.Throws<InvalidInputException>(() => LoraNetwork.Load(unet, bad));
        Assert.Contains("'mid_block.attentions.0.transformer_blocks.0.attn2.to_k'", e2.Message);
        Assert.Contains("4,768", e2.Message);

        // A Linear that is not an attention projection, a text-encoder key, a foreign key, a missing half.
        void Expect(Dictionary<string, Tensor> d, string needle)
        {
            var path = Path.Combine(_tmp, "x.safetensors");
            Safetensors.Save(path, d);
            var ex = Assert.Throws<InvalidInputException>(() => LoraNetwork.Load(unet, path));
            Assert.Contains(needle, ex.Message);
        }
        Expect(new() { ["unet.mid_block.attentions.0.proj_in.lora_A.weight"] = zeros(4, 64), ["unet.mid_block.attentions.0.proj_in.lora_B.weight"] = zeros(64, 4) },
            "'mid_block.attentions.0.proj_in' is not an attention projection");
        Expect(new() { ["text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"] = zeros(4, 32) }, "text encoder");
        Expect(new() { ["model.diffusion_model.input_blocks.1.1.proj_in.weight"] = zeros(4, 32) }, "not a LoRA key");
        Expect(new() { ["unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"] = zeros(4, 32) }, "no up/lora_B");
    }
}
