using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// Golden UNet cases (unet_tiny_*): `sample` (per-sample timesteps), `sample_scalar_timestep` (0-d timestep), and the
/// reference's forward-hook outputs `intermediate.&lt;module path&gt;` captured from the per-sample-timestep call.
/// </summary>
public static class UNetCase
{
    public static CaseTensors Run(string caseDir)
    {
        using var model = UNet2DConditionModel.FromPretrained(caseDir);
        var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
        var expected = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
        var actual = new Dictionary<string, Tensor>();
        var capture = new IntermediateCapture(caseDir, actual);
        using (no_grad())
        {
            model.DebugHook = capture.Hook;
            actual["sample"] = model.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]);
            model.DebugHook = null;
            if (inputs.TryGetValue("timestep_scalar", out var scalar))
                actual["sample_scalar_timestep"] = model.forward(inputs["sample"], scalar, inputs["encoder_hidden_states"]);
        }
        capture.AddExpected(expected);
        foreach (var t in inputs.Values) t.Dispose();
        return new CaseTensors(expected, actual);
    }
}
