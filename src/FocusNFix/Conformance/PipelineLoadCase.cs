using FocusNFix.Pipelines;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// A pipeline folder without recorded outputs: checks that every component loads strictly, that the
/// components fit together, and that two sampling steps give finite images of the default size.
/// </summary>
public static class PipelineLoadCase
{
    public static CaseReport Check(string folder, string kind)
    {
        var checks = new List<TensorCheck>();
        using var pipe = TextToImagePipeline.Load(folder);
        checks.Add(new TensorCheck("load (strict, all components)", 0, 0, 0, 0, true));
        var opts = new SampleOptions { Steps = 2, GuidanceScale = 2.0, Seeds = new long[] { 0 } };
        using var result = pipe.Sample(new[] { "a conformance check" }, opts);
        var expectedShape = new long[] { 1, 3, pipe.DefaultSize, pipe.DefaultSize };
        bool shapeOk = result.Images.shape.SequenceEqual(expectedShape);
        checks.Add(new TensorCheck($"image shape [{string.Join(",", result.Images.shape)}]", 0, 0, 0, 0, shapeOk,
            shapeOk ? null : $"expected [{string.Join(",", expectedShape)}]"));
        bool finite = result.FinalLatents.isfinite().all().item<bool>();
        checks.Add(new TensorCheck("final latents finite", 0, 0, 0, 0, finite, finite ? null : "non-finite values"));
        return new CaseReport(folder, kind, checks);
    }
}
