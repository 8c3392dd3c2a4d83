using FocusNFix.IO;
using FocusNFix.Rewards;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// Golden heatmap cases (heatmap_onnx_tiny, heatmap_torchscript_tiny): runs the case's external model,
/// model.onnx or model.pt, whichever the folder holds, on `image` and `image_rect`.
/// </summary>
public static class HeatmapCase
{
    public static CaseTensors Run(string caseDir)
    {
        string onnx = Path.Combine(caseDir, "model.onnx"), script = Path.Combine(caseDir, "model.pt");
        if (!File.Exists(onnx) && !File.Exists(script))
            throw new InvalidInputException($"{caseDir}: a heatmap case needs model.onnx or model.pt; neither is there");
        IHeatmapSource source = File.Exists(onnx) ? new OnnxHeatmapSource(onnx) : new TorchScriptHeatmapSource(script);
        try
        {
            var expected = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
            var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
            var actual = new Dictionary<string, Tensor>();
            foreach (var (output, input) in new[] { ("heatmap", "image"), ("heatmap_rect", "image_rect") })
            {
                if (!inputs.TryGetValue(input, out var image))
                    throw new InvalidInputException($"{caseDir}/inputs.safetensors: no tensor '{input}'");
                using (no_grad())
                    actual[output] = source.Compute(image, HeatmapKey.Unidentified(image.shape[0]));
            }
            foreach (var t in inputs.Values) t.Dispose();
            return new CaseTensors(expected, actual);
        }
        finally
        {
            source.Dispose();
        }
    }
}
