using FocusNFix.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>
/// The safety checker's scores. CosDist/SpecialCosDist are cosine similarities to the 17 concept and
/// 3 special-care embeddings; SpecialScores = SpecialCosDist - thresholds; ConceptScores = CosDist - thresholds
/// + 0.01 for images with any positive special score (forward_onnx, unrounded, differentiable).
/// HasNsfwConcepts is diffusers' forward() decision (scores rounded to 3 decimals, sequential adjustment);
/// HasNsfwConceptsOnnx is forward_onnx's (any unrounded concept score &gt; 0). They differ only within ~5e-4 of a threshold.
/// </summary>
public sealed record SafetyCheckerOutput(Tensor PooledOutput, Tensor ImageEmbeds, Tensor CosDist, Tensor SpecialCosDist,
    Tensor SpecialScores, Tensor ConceptScores, bool[] HasNsfwConcepts)
{
    public bool[] HasNsfwConceptsOnnx { get; init; } = Array.Empty<bool>();
}

/// <summary>
/// diffusers' StableDiffusionSafetyChecker (config: a transformers CLIPConfig). Keys:
/// <c>vision_model.vision_model.*</c>, <c>visual_projection.weight</c>, <c>concept_embeds</c> [17, P],
/// <c>special_care_embeds</c> [3, P], <c>concept_embeds_weights</c> [17], <c>special_care_embeds_weights</c> [3].
/// </summary>
public sealed class StableDiffusionSafetyChecker : nn.Module
{
    private readonly ClipVisionModel vision_model;
    private readonly Linear visual_projection;
    private readonly Parameter concept_embeds;
    private readonly Parameter special_care_embeds;
    private readonly Parameter concept_embeds_weights;
    private readonly Parameter special_care_embeds_weights;

    public ClipConfig Config { get; }

    public StableDiffusionSafetyChecker(ClipConfig config) : base(nameof(StableDiffusionSafetyChecker))
    {
        Config = config;
        vision_model = new ClipVisionModel(config.VisionConfig);
        // diffusers sizes the projection with the top-level projection_dim, not vision_config's.
        visual_projection = nn.Linear(config.VisionConfig.HiddenSize, config.ProjectionDim, hasBias: false);
        // Frozen in diffusers (requires_grad=False); they are still parameters, so they follow .to(device, dtype).
        concept_embeds = new Parameter(torch.ones(17, config.ProjectionDim), requires_grad: false);
        special_care_embeds = new Parameter(torch.ones(3, config.ProjectionDim), requires_grad: false);
        concept_embeds_weights = new Parameter(torch.ones(17), requires_grad: false);
        special_care_embeds_weights = new Parameter(torch.ones(3), requires_grad: false);
        RegisterComponents();
    }

    public ClipVisionModel VisionModel => vision_model;

    /// <param name="clipInput">[B, 3, S, S], the CLIP feature extractor's normalised output</param>
    public SafetyCheckerOutput Forward(Tensor clipInput)
    {
        using var scope = torch.NewDisposeScope();
        var pooled = vision_model.Forward(clipInput).PooledOutput;
        var imageEmbeds = visual_projection.forward(pooled);
        var specialCos = CosineDistance(imageEmbeds, special_care_embeds);
        var cos = CosineDistance(imageEmbeds, concept_embeds);

        var specialScores = specialCos - special_care_embeds_weights;
        var specialCare = specialScores.gt(0).any(1, keepdim: true);
        var adjustment = specialCare.to(cos.dtype) * 0.01;
        var conceptScores = cos - concept_embeds_weights + adjustment;

        bool[] onnxFlags;
        using (torch.no_grad())
        using (var anyPositive = conceptScores.detach().gt(0).any(1).cpu())
            onnxFlags = anyPositive.data<bool>().ToArray();
        var flags = RoundedDecision(specialCos, cos, special_care_embeds_weights, concept_embeds_weights);

        return new SafetyCheckerOutput(pooled.MoveToOuterDisposeScope(), imageEmbeds.MoveToOuterDisposeScope(),
            cos.MoveToOuterDisposeScope(), specialCos.MoveToOuterDisposeScope(), specialScores.MoveToOuterDisposeScope(),
            conceptScores.MoveToOuterDisposeScope(), flags) { HasNsfwConceptsOnnx = onnxFlags };
    }

    /// <summary>
    /// Scores and the images with flagged entries replaced by zeros (diffusers overwrites them in place;
    /// this returns a new tensor). <paramref name="images"/> has the batch first, in any layout.
    /// </summary>
    public (SafetyCheckerOutput Output, Tensor Images) Forward(Tensor clipInput, Tensor images)
    {
        var output = Forward(clipInput);
        return (output, BlackOut(images, output.HasNsfwConcepts));
    }

    /// <summary>Zeros the images whose flag is set; the others pass through unchanged (and keep their gradient path).</summary>
    public static Tensor BlackOut(Tensor images, IReadOnlyList<bool> flags)
    {
        if (images.dim() < 1 || images.shape[0] != flags.Count)
            throw new InvalidInputException($"images has shape [{string.Join(", ", images.shape)}] but there are {flags.Count} safety flags (one per image, batch first)");
        using var scope = torch.NewDisposeScope();
        var shape = new long[images.dim()];
        Array.Fill(shape, 1L);
        shape[0] = flags.Count;
        var mask = torch.tensor(flags.ToArray(), device: images.device).view(shape);
        return torch.where(mask, torch.zeros_like(images), images).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// diffusers' forward() decision. Per image: special score = round(cos - threshold + adjustment, 3),
    /// where adjustment starts at 0 and becomes 0.01 after the first positive special score (so it also
    /// reaches the later special scores); then concept score = round(cos - threshold + adjustment, 3), and
    /// the image is flagged if any concept score is &gt; 0. Python computes in float64 from the float32 distances
    /// and rounds like numpy (half to even at the scaled value).
    /// </summary>
    public static bool[] RoundedDecision(Tensor specialCosDist, Tensor cosDist, Tensor specialThresholds, Tensor conceptThresholds)
    {
        float[] Host(Tensor t)
        {
            using var c = t.detach().to(float32).cpu().contiguous();
            return c.data<float>().ToArray();
        }
        var special = Host(specialCosDist);
        var concept = Host(cosDist);
        var specialThr = Host(specialThresholds);
        var conceptThr = Host(conceptThresholds);
        int batch = (int)cosDist.shape[0], nSpecial = specialThr.Length, nConcept = conceptThr.Length;
        var flags = new bool[batch];
        for (int i = 0; i < batch; i++)
        {
            double adjustment = 0.0;
            for (int j = 0; j < nSpecial; j++)
                if (Round3((double)special[i * nSpecial + j] - specialThr[j] + adjustment) > 0) adjustment = 0.01;
            for (int j = 0; j < nConcept; j++)
                if (Round3((double)concept[i * nConcept + j] - conceptThr[j] + adjustment) > 0) flags[i] = true;
        }
        return flags;
    }

    static double Round3(double x) => Math.Round(x * 1000.0, MidpointRounding.ToEven) / 1000.0;

    /// <summary>normalize(a) @ normalize(b).T, with F.normalize's eps 1e-12.</summary>
    static Tensor CosineDistance(Tensor a, Tensor b)
    {
        using var scope = torch.NewDisposeScope();
        var na = nn.functional.normalize(a, p: 2.0, dim: 1, eps: 1e-12);
        var nb = nn.functional.normalize(b, p: 2.0, dim: 1, eps: 1e-12);
        return torch.mm(na, nb.t()).MoveToOuterDisposeScope();
    }

    /// <summary>config.json (a CLIPConfig) plus model.safetensors, loaded strictly.</summary>
    public static StableDiffusionSafetyChecker FromPretrained(string folder)
    {
        var config = ClipConfig.Load(Path.Combine(folder, "config.json"));
        ClipLoading.RequireArchitecture(config.Architectures, folder, new[] { "StableDiffusionSafetyChecker" });
        var model = new StableDiffusionSafetyChecker(config);
        StateDict.LoadFile(model, WeightFiles.Find(folder, "model"));
        return model;
    }
}
