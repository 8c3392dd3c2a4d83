using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>clip_text_tiny: CLIPTextModel with and without the padding mask, and every hidden state.</summary>
public static class ClipTextCase
{
    public static CaseTensors Run(string caseDir)
    {
        using var model = ClipTextModel.FromPretrained(caseDir);
        model.eval();
        var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
        var expected = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
        var actual = new Dictionary<string, Tensor>();
        using (torch.no_grad())
        {
            var ids = inputs["input_ids"];
            var plain = model.Forward(ids);
            actual["last_hidden_state"] = plain.LastHiddenState;
            actual["pooler_output"] = plain.PooledOutput;
            for (int i = 0; i < plain.HiddenStates.Count; i++) actual[$"hidden_states.{i}"] = plain.HiddenStates[i];
            var masked = model.Forward(ids, inputs["attention_mask"]);
            actual["last_hidden_state_with_attention_mask"] = masked.LastHiddenState;
            actual["pooler_output_with_attention_mask"] = masked.PooledOutput;
            foreach (var h in masked.HiddenStates) h.Dispose();
        }
        foreach (var t in inputs.Values) t.Dispose();
        return new CaseTensors(expected, actual);
    }
}
