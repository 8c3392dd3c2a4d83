using FocusNFix.Lora;
using FocusNFix.Models;
using FocusNFix.Pipelines;
using FocusNFix.Tests.Cli;
using TorchSharp;
using Xunit;
using static FocusNFix.Tests.Lora.LoraTestUtil;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Lora;

public class LoraCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-lora-cli-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    (int Code, string Output, byte[]? Png) Sample(string name, params string[] extra)
    {
        var outDir = Path.Combine(_tmp, name);
        var args = new[] { "sample", "--model", Golden.Case("pipeline_tiny_sd15"), "--prompt", "a red circle", "--steps", "3",
            "--seed", "5", "--out", outDir }.Concat(extra).ToArray();
        var (code, stdout, stderr) = CliProcess.Run(args);
        var png = Path.Combine(outDir, "0_5.png");
        // Pixels, not file bytes: the PNG's generation metadata names the LoRA and its scale.
        return (code, stdout + stderr, File.Exists(png) ? Pixels(png) : null);
    }

    static byte[] Pixels(string png)
    {
        using var img = SixLabors.ImageSharp.Image.Load<SixLabors.ImageSharp.PixelFormats.Rgb24>(png);
        var bytes = new byte[img.Width * img.Height * 3];
        img.CopyPixelDataTo(bytes);
        return bytes;
    }

    [Fact]
    public void SampleWithLoraChangesTheImageAndScaleZeroDoesNot()
    {
        var loraPath = Path.Combine(_tmp, "tiny_lora.safetensors");
        using (var unet = UNet2DConditionModel.FromPretrained(Path.Combine(Golden.Case("pipeline_tiny_sd15"), "unet")))
        {
            using var lora = LoraNetwork.Attach(unet, new LoraConfig(), new Generator(41));
            RandomizeB(lora, 42, std: 0.3);
            lora.SaveKohya(loraPath);
        }
        var plain = Sample("plain");
        Assert.True(plain.Code == 0, plain.Output);
        var with = Sample("lora", "--lora", loraPath);
        Assert.True(with.Code == 0, with.Output);
        var off = Sample("off", "--lora", loraPath, "--lora-scale", "0");
        Assert.True(off.Code == 0, off.Output);
        Assert.NotEqual(plain.Png, with.Png);
        Assert.Equal(plain.Png, off.Png);
    }

    [Fact]
    public void LoraForAnotherUnetIsAClearError()
    {
        var (code, output, png) = Sample("bad", "--lora", GoldenFile("lora_peft_format.safetensors"));
        Assert.Equal(2, code);
        Assert.Null(png);
        Assert.Contains("error: ", output);
        Assert.Contains("down_blocks.0.attentions.1.transformer_blocks.0.attn1", output);
        Assert.DoesNotContain("   at ", output);
        (code, output, _) = Sample("noflag", "--lora-scale", "0.5");
        Assert.Equal(2, code);
        Assert.Contains("--lora", output);
    }

    [Fact]
    public void PipelineLoadsReplacesAndUnloadsLoras()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_sd15"));
        var path = Path.Combine(_tmp, "p.safetensors");
        using (var lora = LoraNetwork.Attach(pipe.Unet, new LoraConfig { Rank = 2 }, new Generator(51)))
        {
            RandomizeB(lora, 52, std: 0.3);
            lora.SavePeft(path);
        }
        var options = new SampleOptions { Steps = 2, Seeds = new long[] { 3 } };
        using var plain = pipe.Sample(new[] { "x" }, options);
        pipe.LoadLora(path, 0.5);
        pipe.LoadLora(path);  // replaces, does not stack
        Assert.Equal(1.0, pipe.Lora!.Scale);
        using var with = pipe.Sample(new[] { "x" }, options);
        pipe.Lora.Scale = 0.5;
        pipe.Lora.Merge();
        using var merged = pipe.Sample(new[] { "x" }, options);
        pipe.Lora.Unmerge();
        using var half = pipe.Sample(new[] { "x" }, options);
        pipe.UnloadLora();
        Assert.Null(pipe.Lora);
        using var after = pipe.Sample(new[] { "x" }, options);
        Assert.True(MaxDiff(plain.FinalLatents, with.FinalLatents) > 1e-2);
        Assert.True(MaxDiff(half.FinalLatents, merged.FinalLatents) < 1e-4, $"merged vs hooked: {MaxDiff(half.FinalLatents, merged.FinalLatents):E2}");
        Assert.True(MaxDiff(half.FinalLatents, with.FinalLatents) > 1e-3);
        // Merge + unmerge leaves ~1e-7 rounding in the weights, which guidance 7.5 amplifies over the steps.
        Assert.True(MaxDiff(plain.FinalLatents, after.FinalLatents) < 1e-4, $"after unload: {MaxDiff(plain.FinalLatents, after.FinalLatents):E2}");
    }
}
