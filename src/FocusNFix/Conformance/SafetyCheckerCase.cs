using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// safety_checker_tiny: the unrounded forward_onnx scores, forward()'s rounded flags (has_nsfw_concepts,
/// has_nsfw_concepts_forward), forward_onnx's flags and the blacked-out images.
/// </summary>
public static class SafetyCheckerCase
{
    public static CaseTensors Run(string caseDir)
    {
        using var model = StableDiffusionSafetyChecker.FromPretrained(caseDir);
        model.eval();
        var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
        var expected = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
        var actual = new Dictionary<string, Tensor>();
        using (torch.no_grad())
        {
            var (o, images) = model.Forward(inputs["clip_input"], inputs["images"]);
            actual["pooled_output"] = o.PooledOutput;
            actual["image_embeds"] = o.ImageEmbeds;
            actual["cos_dist"] = o.CosDist;
            actual["special_cos_dist"] = o.SpecialCosDist;
            actual["special_scores"] = o.SpecialScores;
            actual["concept_scores"] = o.ConceptScores;
            actual["images_out"] = images;
            Tensor Flags(bool[] flags, string name) =>
                torch.tensor(flags).to(expected.TryGetValue(name, out var e) ? e.dtype : ScalarType.Int64);
            actual["has_nsfw_concepts"] = Flags(o.HasNsfwConcepts, "has_nsfw_concepts");
            actual["has_nsfw_concepts_forward"] = Flags(o.HasNsfwConcepts, "has_nsfw_concepts_forward");
            actual["has_nsfw_concepts_forward_onnx"] = Flags(o.HasNsfwConceptsOnnx, "has_nsfw_concepts_forward_onnx");
        }
        foreach (var t in inputs.Values) t.Dispose();
        return new CaseTensors(expected, actual);
    }
}
