using FocusNFix.Lora;
using FocusNFix.Pipelines;
using Xunit;

namespace FocusNFix.Tests.Cli;

public class WorldCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-cli-world-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    static string Base => Path.Combine(Golden.Root, "models", "shapesworld", "base");

    [Fact]
    public void WorldEvalPrintsTheOracleFiguresWithAndWithoutALora()
    {
        var lora = Path.Combine(_tmp, "zero.safetensors");
        using (var pipe = TextToImagePipeline.Load(Base))
        {
            var net = LoraNetwork.Attach(pipe.Unet, new LoraConfig { Rank = 2, Alpha = 2 }, new TorchSharp.torch.Generator(0));
            net.SavePeft(lora);
        }
        var args = new[] { "world", "eval", "--model", Base, "--world", Path.Combine(Golden.Root, "models", "shapesworld", "world.json"), "--split", "val", "--seeds", "1", "--steps", "2" };
        var (code, plain, err) = CliProcess.Run(args);
        Assert.True(code == 0, plain + err);
        Assert.Contains("colour-in-place accuracy", plain);
        Assert.Contains("| images | 64 |", plain);
        var (code2, withLora, err2) = CliProcess.Run(args.Concat(new[] { "--lora", lora }).ToArray());
        Assert.True(code2 == 0, withLora + err2);
        // A zero-initialised LoRA changes nothing, so the figures are the same.
        Assert.Equal(plain.Split('\n').Where(l => l.StartsWith('|')), withLora.Split('\n').Where(l => l.StartsWith('|')));
    }

    [Fact]
    public void RenderWritesImagesMasksAndScenes()
    {
        var (code, stdout, stderr) = CliProcess.Run("world", "render", "--count", "3", "--seed", "5", "--out", _tmp);
        Assert.True(code == 0, stdout + stderr);
        foreach (var f in new[] { "5.png", "5_hazard.png", "7_glitch.png", "scenes.jsonl" })
            Assert.True(File.Exists(Path.Combine(_tmp, f)), f);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(_tmp, "scenes.jsonl")).Length);
    }
}
