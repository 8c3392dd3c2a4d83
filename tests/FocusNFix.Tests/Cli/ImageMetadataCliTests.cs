using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Models;
using FocusNFix.Pipelines;
using TorchSharp;
using Xunit;

namespace FocusNFix.Tests.Cli;

/// <summary>PNG generation metadata through the CLI: sample, --from-png, heatmap naming and --overwrite.</summary>
public class ImageMetadataCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-cli-meta-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    [Fact]
    public void FromPngRecreatesTheImageBitForBit()
    {
        var model = Golden.Case("pipeline_tiny_sd15");
        var loraDir = Path.Combine(_tmp, "run");
        using (var unet = UNet2DConditionModel.FromPretrained(Path.Combine(model, "unet")))
        {
            using var lora = LoraNetwork.Attach(unet, new LoraConfig { Rank = 2, Alpha = 2 }, new TorchSharp.torch.Generator(41));
            Lora.LoraTestUtil.RandomizeB(lora, 42, std: 0.3);
            RunFolderLora.Write(loraDir, lora, model);
        }
        // A stochastic scheduler, guidance, a negative prompt, clip skip and a scaled LoRA: every setting must come back.
        var first = Path.Combine(_tmp, "first");
        var (code, stdout, stderr) = CliProcess.Run("sample", "--model", model, "--prompt", "a red circle, small", "--negative-prompt", "blue",
            "--seed", "7", "--steps", "3", "--guidance", "4.5", "--scheduler", "euler-a", "--clip-skip", "1", "--lora", loraDir, "--lora-scale", "0.7",
            "--out", first);
        Assert.True(code == 0, stdout + stderr);
        Assert.Matches(@"\d it/s|\d s/it", stdout + stderr);
        var original = Path.Combine(first, "0_7.png");
        var parameters = Images.ReadPngText(original)[GenerationInfo.ParametersKeyword];
        Assert.StartsWith("a red circle, small\nNegative prompt: blue\nSteps: 3, Sampler: Euler a, CFG scale: 4.5, Seed: 7, Size: ", parameters);
        Assert.Contains("Clip skip: 2, Lora: run, Lora scale: 0.7", parameters);

        var again = Path.Combine(_tmp, "again");
        (code, stdout, stderr) = CliProcess.Run("sample", "--from-png", original, "--out", again);
        Assert.True(code == 0, stdout + stderr);
        Assert.Equal(File.ReadAllBytes(original), File.ReadAllBytes(Path.Combine(again, "0_7.png")));

        (code, _, stderr) = CliProcess.Run("sample", "--from-png", original, "--steps", "5", "--out", again);
        Assert.Equal(2, code);
        Assert.Contains("--steps", stderr);
        (code, _, stderr) = CliProcess.Run("sample", "--from-png", original, "--out", first);
        Assert.Equal(2, code);
        Assert.Contains("overwrite", stderr);
    }

    [Fact]
    public void FromPngRecreatesASafeLatentDiffusionImage()
    {
        var model = Golden.Case("pipeline_tiny_sd15");
        var first = Path.Combine(_tmp, "sld");
        var (code, stdout, stderr) = CliProcess.Run("sample", "--model", model, "--prompt", "a red circle", "--seed", "3", "--steps", "3",
            "--guidance", "5", "--sld-concept", "green triangle", "--sld-preset", "max", "--sld-momentum-beta", "0.5", "--out", first);
        Assert.True(code == 0, stdout + stderr);
        var original = Path.Combine(first, "0_3.png");
        var info = GenerationInfo.FromPng(original);
        Assert.Equal(new SldOptions("green triangle", SldSettings.Max with { MomentumBeta = 0.5 }), info.Sld);
        Assert.Contains("SLD concept: green triangle", Images.ReadPngText(original)[GenerationInfo.ParametersKeyword]);

        // Without its SLD settings the re-created image would differ: the safety branch must come back too.
        var again = Path.Combine(_tmp, "sld-again");
        (code, stdout, stderr) = CliProcess.Run("sample", "--from-png", original, "--out", again);
        Assert.True(code == 0, stdout + stderr);
        Assert.Equal(File.ReadAllBytes(original), File.ReadAllBytes(Path.Combine(again, "0_3.png")));
        (code, _, stderr) = CliProcess.Run("sample", "--from-png", original, "--sld-preset", "weak", "--out", Path.Combine(_tmp, "x"));
        Assert.Equal(2, code);
        Assert.Contains("--sld-preset", stderr);
    }

    [Fact]
    public void HeatmapNamesFilesLikeTheOtherCommandsAndRefusesToOverwrite()
    {
        // A mask-folder heatmap: no random model, so this test never touches torch's global generator.
        var masks = Directory.CreateDirectory(Path.Combine(_tmp, "masks")).FullName;
        using (var m = TorchSharp.torch.zeros(8, 8)) { m[2, 3] = TorchSharp.torch.tensor(1f); FocusNFix.Masks.HeatmapMask.SavePng(m, Path.Combine(masks, "2_3.png")); }
        var outDir = Path.Combine(_tmp, "hm");
        string[] Args(params string[] extra) => new[] { "heatmap", "--model", Golden.Case("pipeline_tiny_pixel"), "--heatmap", $"mask-folder:{masks}",
            "--prompt", "a red circle", "--seed", "3", "--prompt-index", "2", "--steps", "2", "--out", outDir }.Concat(extra).ToArray();
        var (code, stdout, stderr) = CliProcess.Run(Args());
        Assert.True(code == 0, stdout + stderr);
        Assert.Matches(@"\d it/s|\d s/it", stdout);
        foreach (var kind in new[] { "image", "heatmap", "overlay", "mask" })
        {
            var info = GenerationInfo.FromPng(Path.Combine(outDir, $"2_3_{kind}.png"));
            Assert.Equal(kind == "image" ? "sample" : kind, info.Image);
            Assert.Equal((2, 3L, "a red circle"), (info.PromptIndex, info.Seed, info.Prompt));
        }
        var before = File.GetLastWriteTimeUtc(Path.Combine(outDir, "2_3_mask.png"));
        (code, _, stderr) = CliProcess.Run(Args());
        Assert.Equal(2, code);
        Assert.Contains("2_3_", stderr);
        Assert.Contains("--overwrite", stderr);
        Assert.Equal(before, File.GetLastWriteTimeUtc(Path.Combine(outDir, "2_3_mask.png")));
        (code, stdout, stderr) = CliProcess.Run(Args("--overwrite"));
        Assert.True(code == 0, stdout + stderr);
    }
}
