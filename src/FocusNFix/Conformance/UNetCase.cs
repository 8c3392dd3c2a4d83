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
        var intermediatesPath = Path.Combine(caseDir, "intermediates.safetensors");
        var wanted = File.Exists(intermediatesPath) ? Safetensors.Load(intermediatesPath) : new Dictionary<string, Tensor>();

        var actual = new Dictionary<string, Tensor>();
        using (no_grad())
        {
            model.DebugHook = (name, t) =>
            {
                var key = "intermediate." + name;
                if (wanted.ContainsKey(key) && !actual.ContainsKey(key)) actual[key] = t.detach().clone().DetachFromDisposeScope();
            };
            actual["sample"] = model.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]);
            model.DebugHook = null;
            if (inputs.TryGetValue("timestep_scalar", out var scalar))
                actual["sample_scalar_timestep"] = model.forward(inputs["sample"], scalar, inputs["encoder_hidden_states"]);
        }
        // Compare only the intermediates our modules produce (all the reference's hook points have a counterpart here).
        foreach (var (key, t) in wanted)
        {
            if (actual.ContainsKey(key)) expected[key] = t;
            else t.Dispose();
        }
        foreach (var t in inputs.Values) t.Dispose();
        return new CaseTensors(expected, actual);
    }
}
