using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Models;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// The lora_peft_names case: every LoRA file in the folder, loaded onto the base UNet at scale 1 and 0.5, must
/// reproduce the reference outputs both through the hooks (<c>:hook</c>) and merged into the weights (<c>:merged</c>);
/// <c>sample_no_lora</c> checks the base UNet itself, before and after all the merges and unmerges.
/// </summary>
public static class LoraCase
{
    public static CaseTensors Run(string caseDir)
    {
        var keysJson = JsonConfig.Load(Path.Combine(caseDir, "lora_keys.json"));
        var baseDir = Path.GetFullPath(Path.Combine(caseDir, keysJson.RequireString("base_model")));
        var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
        var outputs = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
        var expected = new Dictionary<string, Tensor>();
        var actual = new Dictionary<string, Tensor>();
        using var unet = UNet2DConditionModel.FromPretrained(baseDir);
        unet.eval();
        Tensor Forward()
        {
            using var _ = no_grad();
            return unet.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]);
        }
        expected["sample_no_lora"] = outputs["sample_no_lora"];
        actual["sample_no_lora"] = Forward();
        foreach (var file in Directory.GetFiles(caseDir, "*.safetensors").Where(f => !Path.GetFileName(f).StartsWith("inputs") && !Path.GetFileName(f).StartsWith("outputs")).OrderBy(f => f, StringComparer.Ordinal))
        {
            using var lora = LoraNetwork.Load(unet, file);
            foreach (var (scale, outName) in new[] { (1.0, "sample_lora_scale_1"), (0.5, "sample_lora_scale_0.5") })
            {
                lora.Scale = scale;
                var key = $"{Path.GetFileName(file)}:{outName}";
                expected[$"{key}:hook"] = outputs[outName].clone();
                actual[$"{key}:hook"] = Forward();
                lora.Merge();
                expected[$"{key}:merged"] = outputs[outName].clone();
                actual[$"{key}:merged"] = Forward();
                lora.Unmerge();
            }
            lora.Detach();
        }
        // Unmerging must have given the base weights back.
        expected["sample_no_lora:after_unmerge"] = outputs["sample_no_lora"].clone();
        actual["sample_no_lora:after_unmerge"] = Forward();
        return new CaseTensors(expected, actual);
    }
}
