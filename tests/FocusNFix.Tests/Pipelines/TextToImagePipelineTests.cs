using FocusNFix.Conformance;
using FocusNFix.Pipelines;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Pipelines;

public class TextToImagePipelineTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-pipe-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    string CopyPipeline(string name)
    {
        var src = Golden.Case(name);
        var dst = Path.Combine(_tmp, name);
        foreach (var dir in Directory.GetDirectories(src, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(dir.Replace(src, dst));
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.GetFiles(src, "*", SearchOption.AllDirectories))
            File.Copy(f, f.Replace(src, dst));
        return dst;
    }

    [Theory]
    [InlineData("pipeline_tiny_sd15_run")]
    [InlineData("pipeline_tiny_pixel_run")]
    public void RecordedRunsMatchEveryStep(string caseName)
    {
        var report = ConformanceCheck.Check(Golden.Case(caseName));
        var failures = report.Checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.MaxAbsError:E2} {c.Problem}").ToList();
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // every step of every run is compared, not just the final sample
        Assert.Contains(report.Checks, c => c.Name.EndsWith("step.9.latents"));
        Assert.Contains(report.Checks, c => c.Name.EndsWith("step.0.unet_output"));
    }

    [Fact]
    public void SameSeedSameImageAndImagesDependOnlyOnTheirSeed()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        var o = new SampleOptions { Steps = 3, GuidanceScale = 3.0, Seeds = new long[] { 5, 6 } };
        using var a = pipe.Sample(new[] { "a red circle", "a blue square" }, o);
        using var b = pipe.Sample(new[] { "a red circle", "a blue square" }, o);
        Assert.True(a.Images.eq(b.Images).all().item<bool>());
        using var alone = pipe.Sample(new[] { "a blue square" }, new SampleOptions { Steps = 3, GuidanceScale = 3.0, Seeds = new long[] { 6 } });
        Assert.True(alone.Images[0].allclose(a.Images[1], rtol: 0, atol: 1e-5));
        using var other = pipe.Sample(new[] { "a red circle" }, new SampleOptions { Steps = 3, GuidanceScale = 3.0, Seeds = new long[] { 7 } });
        Assert.False(other.Images[0].allclose(a.Images[0], rtol: 0, atol: 1e-3));
        Assert.Equal(new long[] { 2, 3, 32, 32 }, a.Images.shape);
        Assert.True(a.Images.min().item<float>() >= 0 && a.Images.max().item<float>() <= 1);
    }

    [Fact]
    public void LatentPipelineDecodesToDefaultSizeWithEveryScheduler()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_sd15"));
        foreach (var name in FocusNFix.Schedulers.SchedulerFactory.Names)
        {
            pipe.UseScheduler(name);
            using var r = pipe.Sample(new[] { "x" }, new SampleOptions { Steps = 4, Seeds = new long[] { 1 } });
            Assert.Equal(new long[] { 1, 3, 32, 32 }, r.Images.shape);
            Assert.True(r.Images.isfinite().all().item<bool>(), name);
        }
    }

    [Fact]
    public void LongPromptIsTruncatedWithAWarning()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        var warnings = new List<string>();
        var prompt = string.Join(" ", Enumerable.Repeat("red circle", 60));
        using var r = pipe.Sample(new[] { prompt }, new SampleOptions { Steps = 1, GuidanceScale = 1, Seeds = new long[] { 0 } }, warn: warnings.Add);
        Assert.Single(warnings);
        Assert.Contains("too long", warnings[0]);
    }

    [Fact]
    public void MissingConfigFileIsNamed()
    {
        var dir = CopyPipeline("pipeline_tiny_pixel");
        File.Delete(Path.Combine(dir, "unet", "config.json"));
        var e = Assert.Throws<InvalidInputException>(() => TextToImagePipeline.Load(dir));
        Assert.Contains(Path.Combine("unet", "config.json"), e.Message);
    }

    [Fact]
    public void PickledCheckpointIsRefusedWithReasonAndConversion()
    {
        var dir = CopyPipeline("pipeline_tiny_pixel");
        var unet = Path.Combine(dir, "unet");
        File.Move(Path.Combine(unet, "diffusion_pytorch_model.safetensors"), Path.Combine(unet, "diffusion_pytorch_model.bin"));
        var e = Assert.Throws<InvalidInputException>(() => TextToImagePipeline.Load(dir));
        Assert.Contains("diffusion_pytorch_model.bin", e.Message);
        Assert.Contains("arbitrary code", e.Message);
        Assert.Contains("safetensors", e.Message);
    }

    [Fact]
    public void MissingComponentAndIndexAreNamed()
    {
        var dir = CopyPipeline("pipeline_tiny_sd15");
        Directory.Delete(Path.Combine(dir, "vae"), true);
        Assert.Contains("vae", Assert.Throws<InvalidInputException>(() => TextToImagePipeline.Load(dir)).Message);
        File.Delete(Path.Combine(dir, "model_index.json"));
        Assert.Contains("model_index.json", Assert.Throws<InvalidInputException>(() => TextToImagePipeline.Load(dir)).Message);
    }

    [Fact]
    public void WrongLatentShapeAndSizeAreRefused()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        Assert.Contains("expected [1,3,32,32]", Assert.Throws<InvalidInputException>(() =>
            pipe.Sample(new[] { "x" }, new SampleOptions { Steps = 1, Latents = zeros(1, 4, 32, 32) })).Message);
        Assert.Contains("height = 30: expected a positive multiple of 8", Assert.Throws<InvalidInputException>(() =>
            pipe.Sample(new[] { "x" }, new SampleOptions { Steps = 1, Height = 30, Seeds = new long[] { 0 } })).Message);
    }

    [Fact]
    public void RecommendedSamplingIsReadFromModelIndexAndBadValuesAreNamed()
    {
        var dir = CopyPipeline("pipeline_tiny_pixel");
        Assert.Equal((null, null), PipelineFolder.Open(dir).RecommendedSampling);
        Assert.Equal((50, 7.5), PipelineFolder.Open(dir).ResolveSampling(null, null));
        var indexPath = Path.Combine(dir, "model_index.json");
        var index = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(indexPath))!.AsObject();
        index["_focusnfix_sampling"] = new System.Text.Json.Nodes.JsonObject { ["steps"] = 30, ["guidance_scale"] = 1.5 };
        File.WriteAllText(indexPath, index.ToJsonString());
        Assert.Equal((30, 1.5), PipelineFolder.Open(dir).RecommendedSampling);
        Assert.Equal((30, 1.5), PipelineFolder.Open(dir).ResolveSampling(null, null));
        Assert.Equal((12, 1.5), PipelineFolder.Open(dir).ResolveSampling(12, null));
        index["_focusnfix_sampling"] = new System.Text.Json.Nodes.JsonObject { ["steps"] = "many" };
        File.WriteAllText(indexPath, index.ToJsonString());
        var e = Assert.Throws<InvalidInputException>(() => PipelineFolder.Open(dir).RecommendedSampling);
        Assert.Contains("_focusnfix_sampling", e.Message);
        Assert.Contains("model_index.json", e.Message);
    }
}
