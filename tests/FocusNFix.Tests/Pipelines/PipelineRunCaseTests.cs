using System.Text.Json.Nodes;
using FocusNFix.Conformance;
using FocusNFix.IO;
using FocusNFix.Pipelines;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Pipelines;

public class PipelineRunCaseTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-runcase-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    [Fact]
    public void GoldenSafeLatentDiffusionRunsMatchEveryStep()
    {
        var dir = Golden.Case("pipeline_tiny_sld_run");
        Assert.Equal("sld_pipeline_run", ConformanceCheck.DetectKind(dir));
        var report = ConformanceCheck.Check(dir);
        var failures = report.Checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.MaxAbsError:E2} {c.Problem}").ToList();
        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n" + string.Join("\n", report.Notes ?? Array.Empty<string>()));
        foreach (var run in new[] { "sld_medium", "sld_strong" })
        {
            Assert.Contains(report.Checks, c => c.Name == $"{run}.step.9.noise_pred");
            Assert.Contains(report.Checks, c => c.Name == $"{run}.image");
            Assert.Contains(report.Notes!, n => n.StartsWith($"{run}: ") && n.Contains("threshold switch"));
        }
        Assert.Contains(report.Checks, c => c.Name == "safety_concept_embeds" && c.Atol == 1e-5);
    }

    [Fact]
    public void SafeLatentDiffusionCaseIsNotRunAsAPlainPipelineRun()
    {
        var e = Assert.Throws<InvalidInputException>(() => ConformanceCheck.Check(Golden.Case("pipeline_tiny_sld_run"), kind: "sd_pipeline_run"));
        Assert.Contains("sld_pipeline_run", e.Message);
        e = Assert.Throws<InvalidInputException>(() => ConformanceCheck.Check(Golden.Case("pipeline_tiny_sd15_run"), kind: "sld_pipeline_run"));
        Assert.Contains("'safety_concept' is missing", e.Message);
    }

    /// <summary>
    /// A case with a non-square size, a negative prompt and two runs, recorded from our own pipeline: the runner
    /// passes only if it honours each of those fields (a default 32x32 size would not fit the latents).
    /// </summary>
    string WriteCase(string negative)
    {
        var dir = Path.Combine(_tmp, "case");
        Directory.CreateDirectory(dir);
        var prompts = new[] { "a red circle" };
        using var gen = new Generator(7);
        using var latents = randn(new long[] { 1, 4, 12, 20 }, generator: gen);
        var outputs = new Dictionary<string, Tensor>();
        using (var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_sd15")))
        {
            using (no_grad()) outputs["negative_prompt_embeds"] = pipe.EncodePrompts(new[] { negative });
            foreach (var (name, guidance) in new[] { ("cfg", 4.0), ("nocfg", 1.0) })
            {
                var o = new SampleOptions { Steps = 2, GuidanceScale = guidance, NegativePrompt = negative, Height = 24, Width = 40, Latents = latents };
                using var r = pipe.Sample(prompts, o, onStep: s => outputs[$"{name}.step.{s.Index}.noise_pred"] = s.NoisePred.clone().DetachFromDisposeScope());
                outputs[$"{name}.final_latents"] = r.FinalLatents.clone();
                outputs[$"{name}.image"] = r.Images.clone();
            }
        }
        Safetensors.Save(Path.Combine(dir, "inputs.safetensors"), new Dictionary<string, Tensor> { ["latents"] = latents });
        Safetensors.Save(Path.Combine(dir, "outputs.safetensors"), outputs);
        foreach (var t in outputs.Values) t.Dispose();
        var spec = new JsonObject
        {
            ["pipeline"] = Golden.Case("pipeline_tiny_sd15"), ["prompts"] = new JsonArray("a red circle"), ["negative_prompt"] = negative,
            ["height"] = 24, ["width"] = 40,
            ["runs"] = new JsonArray(
                new JsonObject { ["name"] = "cfg", ["guidance_scale"] = 4.0, ["num_inference_steps"] = 2 },
                new JsonObject { ["name"] = "nocfg", ["guidance_scale"] = 1.0, ["num_inference_steps"] = 2 }),
        };
        File.WriteAllText(Path.Combine(dir, "inputs.json"), spec.ToJsonString());
        return dir;
    }

    [Fact]
    public void SizeNegativePromptAndEveryRunOfInputsJsonAreHonoured()
    {
        var dir = WriteCase("blurry, low quality");
        var report = ConformanceCheck.Check(dir);
        Assert.Equal("sd_pipeline_run", report.Kind);
        Assert.True(report.Passed, string.Join("\n", report.Checks.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.MaxAbsError:E2} {c.Problem}")));
        Assert.Contains(report.Checks, c => c.Name == "cfg.image");
        Assert.Contains(report.Checks, c => c.Name == "nocfg.final_latents");

        // the same case with another negative prompt in inputs.json: the guided run must no longer match
        var specPath = Path.Combine(dir, "inputs.json");
        var spec = JsonNode.Parse(File.ReadAllText(specPath))!.AsObject();
        spec["negative_prompt"] = "";
        File.WriteAllText(specPath, spec.ToJsonString());
        var changed = ConformanceCheck.Check(dir);
        Assert.Contains(changed.Checks, c => c.Name == "cfg.final_latents" && !c.Passed);
        Assert.Contains(changed.Checks, c => c.Name == "nocfg.final_latents" && c.Passed); // no guidance, no negative prompt

        // a listed run the reference did not record is an error, not a silent pass
        ((JsonArray)spec["runs"]!).Add(new JsonObject { ["name"] = "extra", ["guidance_scale"] = 2.0, ["num_inference_steps"] = 2 });
        File.WriteAllText(specPath, spec.ToJsonString());
        var e = Assert.Throws<InvalidInputException>(() => ConformanceCheck.Check(dir));
        Assert.Contains("run 'extra'", e.Message);
    }
}
