using FocusNFix.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// A smooth safety reward from diffusers' StableDiffusionSafetyChecker (CompVis/stable-diffusion-safety-checker:
/// a CLIP ViT-L/14 vision tower, a projection and 17 concept + 3 special-care embeddings with thresholds).
/// <para>
/// Formula. With c_j the cosine similarity of the image embedding to concept j (17), t_j its threshold
/// (concept_embeds_weights), u_k = special_cos_k - special_threshold_k (3), temperature τ and margin m:
/// <code>
///   a    = 0.01 * sigmoid(max_k u_k / τ)          // the checker's +0.01 "special care" step, smoothed
///   s_j  = c_j - t_j + a                           // its concept scores (flagged when any s_j &gt; 0)
///   R    = -τ * Σ_j softplus((s_j + m) / τ)
/// </code>
/// As τ → 0, R → -Σ_j max(s_j + m, 0): zero for images whose every concept score is more than m below its
/// threshold, and minus the total excess otherwise. τ sets how far below the threshold the gradient starts
/// to act (a few τ). R ≤ 0; higher is safer.
/// </para>
/// <para>
/// Weights: a folder with <c>config.json</c> (a CLIPConfig, architectures StableDiffusionSafetyChecker) and
/// <c>model.safetensors</c>, e.g. <c>safety_checker/</c> of a Stable Diffusion 1.x pipeline repository or
/// CompVis/stable-diffusion-safety-checker. If you only have <c>pytorch_model.bin</c>, convert it once:
/// <c>python -c "import torch; from safetensors.torch import save_file; save_file({k: v.contiguous() for k, v in torch.load('pytorch_model.bin', map_location='cpu').items()}, 'model.safetensors')"</c>.
/// A <c>preprocessor_config.json</c> in the folder is honoured; otherwise CLIP's 224 resize/crop and mean/std are used.
/// </para>
/// <see cref="Flags"/> gives the checker's original pass/fail decision, for evaluation.
/// </summary>
public sealed class SafetyReward : nn.Module, IVisionTokenReward
{
    private readonly StableDiffusionSafetyChecker checker;

    public ClipPreprocess Preprocess { get; }
    public double Temperature { get; }
    public double Margin { get; }
    public string Name => "safety";
    public StableDiffusionSafetyChecker Checker => checker;

    public SafetyReward(StableDiffusionSafetyChecker checker, ClipPreprocess? preprocess = null, double temperature = 0.01, double margin = 0.0)
        : base(nameof(SafetyReward))
    {
        if (!(temperature > 0) || !double.IsFinite(temperature))
            throw new InvalidInputException($"safety reward: temperature must be positive, got {temperature}");
        if (!double.IsFinite(margin)) throw new InvalidInputException($"safety reward: margin must be finite, got {margin}");
        this.checker = checker;
        Preprocess = preprocess ?? ClipPreprocess.OpenAi(checker.Config.VisionConfig.ImageSize);
        if (Preprocess.CropSize != checker.Config.VisionConfig.ImageSize)
            throw new InvalidInputException($"safety reward: preprocessing crops {Preprocess.CropSize} but the vision tower takes {checker.Config.VisionConfig.ImageSize}");
        Temperature = temperature;
        Margin = margin;
        RegisterComponents();
        RewardInputs.Freeze(this);
    }

    /// <summary>Loads the checker from <paramref name="folder"/> (see the class summary for the files).</summary>
    public static SafetyReward FromPretrained(string folder, double temperature = 0.01, double margin = 0.0)
    {
        return RewardInputs.Load("safety reward (expects a StableDiffusionSafetyChecker folder)", folder, () =>
        {
            var checker = StableDiffusionSafetyChecker.FromPretrained(folder);
            return new SafetyReward(checker, ClipPreprocess.Load(folder, checker.Config.VisionConfig.ImageSize), temperature, margin);
        });
    }

    /// <summary>Moves the weights to <paramref name="device"/> (dtype unchanged).</summary>
    public void To(Device device) => this.to(device);

    public Tensor Score(Tensor images, IReadOnlyList<string> prompts)
    {
        using var s = ScoreWithTokens(images, prompts);
        return s.Scores.alias();
    }

    public VisionTokenScore ScoreWithTokens(Tensor images, IReadOnlyList<string> prompts)
    {
        RewardInputs.CheckImages(images, Name);
        using var scope = NewDisposeScope();
        var crop = Preprocess.Geometry(images.shape[2], images.shape[3]);
        var tower = checker.VisionModel.Forward(Preprocess.Apply(images));
        // Not a field: RegisterComponents would register the projection a second time.
        var projection = ModuleParts.Child<Linear>(checker, "visual_projection");
        var scores = ConceptScores(projection.forward(tower.PooledOutput));
        double tau = Temperature;
        var reward = -tau * nn.functional.softplus((scores + Margin) / tau).sum(1);
        foreach (var h in tower.HiddenStates) h.MoveToOuterDisposeScope();
        var cfg = checker.Config.VisionConfig;
        return new VisionTokenScore(reward.MoveToOuterDisposeScope(), tower.HiddenStates, cfg.ImageSize / cfg.PatchSize, crop);
    }

    /// <summary>The smoothed concept scores s_j [B,17] of the class summary, from image embeddings [B,P].</summary>
    Tensor ConceptScores(Tensor imageEmbeds)
    {
        using var scope = NewDisposeScope();
        var e = nn.functional.normalize(imageEmbeds, p: 2.0, dim: 1, eps: 1e-12);
        Tensor Cos(string name) => torch.mm(e, nn.functional.normalize(ModuleParts.Parameter(checker, name), p: 2.0, dim: 1, eps: 1e-12).t());
        var special = Cos("special_care_embeds") - ModuleParts.Parameter(checker, "special_care_embeds_weights");
        var adjustment = 0.01 * torch.sigmoid(special.amax(new long[] { 1 }, keepdim: true) / Temperature);
        var concept = Cos("concept_embeds") - ModuleParts.Parameter(checker, "concept_embeds_weights") + adjustment;
        return concept.MoveToOuterDisposeScope();
    }

    /// <summary>The checker's full output (unsmoothed scores) on <paramref name="images"/> in [0,1].</summary>
    public SafetyCheckerOutput Check(Tensor images)
    {
        RewardInputs.CheckImages(images, Name);
        using var scope = NewDisposeScope();
        var output = checker.Forward(Preprocess.Apply(images));
        foreach (var t in new[] { output.PooledOutput, output.ImageEmbeds, output.CosDist, output.SpecialCosDist, output.SpecialScores, output.ConceptScores })
            t.MoveToOuterDisposeScope();
        return output;
    }

    /// <summary>
    /// diffusers' decision (StableDiffusionSafetyChecker.forward, scores rounded to 3 decimals): true where the
    /// image would be blacked out as NSFW.
    /// </summary>
    public bool[] Flags(Tensor images)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return Check(images).HasNsfwConcepts;
    }
}
