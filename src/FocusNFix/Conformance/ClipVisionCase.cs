using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>clip_vision_tiny: CLIPVisionModelWithProjection, including hidden_states[-2] (IP-Adapter-plus features).</summary>
public static class ClipVisionCase
{
    public static CaseTensors Run(string caseDir)
    {
        using var model = ClipVisionModelWithProjection.FromPretrained(caseDir);
        model.eval();
        var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
        var expected = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
        var actual = new Dictionary<string, Tensor>();
        using (torch.no_grad())
        {
            var o = model.Forward(inputs["pixel_values"]);
            actual["image_embeds"] = o.ImageEmbeds;
            actual["last_hidden_state"] = o.LastHiddenState;
            actual["pooler_output"] = o.PooledOutput;
            actual["penultimate_hidden_state"] = o.HiddenStates[^2];
        }
        foreach (var t in inputs.Values) t.Dispose();
        return new CaseTensors(expected, actual);
    }
}
