using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// Golden VAE case (vae_tiny): latent_mean/latent_logvar/latent_std of encode(image), latent_sample = mean + std ·
/// posterior_noise, decoded = decode(latent) (raw latent, no scaling), reconstruction = decode(encode(image).mean),
/// plus `intermediate.encode.*` / `intermediate.decode.*` hook outputs.
/// </summary>
public static class VaeCase
{
    public static CaseTensors Run(string caseDir)
    {
        using var model = AutoencoderKL.FromPretrained(caseDir);
        var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
        var expected = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
        var actual = new Dictionary<string, Tensor>();
        var capture = new IntermediateCapture(caseDir, actual);
        using (no_grad())
        {
            model.DebugHook = capture.Hook;
            var posterior = model.Encode(inputs["image"]);
            actual["latent_mean"] = posterior.Mean;
            actual["latent_logvar"] = posterior.LogVar;
            actual["latent_std"] = posterior.Std;
            actual["latent_sample"] = posterior.Sample(inputs["posterior_noise"]);
            actual["decoded"] = model.Decode(inputs["latent"]);
            model.DebugHook = null;
            actual["reconstruction"] = model.forward(inputs["image"]);
        }
        capture.AddExpected(expected);
        foreach (var t in inputs.Values) t.Dispose();
        return new CaseTensors(expected, actual);
    }
}
