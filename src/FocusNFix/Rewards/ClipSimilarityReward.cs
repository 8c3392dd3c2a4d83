using FocusNFix.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// Shared part of the rewards built on a transformers CLIPModel: the cosine similarity between each image's
/// embedding (visual_projection of the pooled vision output) and its prompt's (text_projection of the pooled
/// text output). Text embeddings are computed without gradient: only the images are optimised.
/// </summary>
public abstract class ClipSimilarityReward : nn.Module, IVisionTokenReward
{
    // Protected, not private: RegisterComponents only sees a base class's non-private fields.
    protected readonly ClipModel clip;
    readonly Func<IReadOnlyList<string>, Tensor> _tokenize;

    public ClipPreprocess Preprocess { get; }
    public abstract string Name { get; }
    public ClipModel Clip => clip;

    /// <param name="tokenize">prompts to token ids [B, T] (int64), e.g. <c>ClipTokenizer.Tokenize</c></param>
    protected ClipSimilarityReward(string moduleName, ClipModel clip, Func<IReadOnlyList<string>, Tensor> tokenize, ClipPreprocess? preprocess)
        : base(moduleName)
    {
        this.clip = clip;
        _tokenize = tokenize ?? throw new ArgumentNullException(nameof(tokenize));
        var size = clip.Config.VisionConfig.ImageSize;
        Preprocess = preprocess ?? ClipPreprocess.OpenAi(size);
        if (Preprocess.CropSize != size)
            throw new InvalidInputException($"{moduleName}: preprocessing crops {Preprocess.CropSize} but the vision tower takes {size}");
        RegisterComponents();
        RewardInputs.Freeze(this);
    }

    /// <summary>The reward from the cosine similarities [B].</summary>
    protected abstract Tensor FromCosine(Tensor cosine);

    /// <summary>The text given to the tokenizer for each prompt.</summary>
    protected virtual string TextFor(string prompt) => prompt;

    /// <summary>Token ids of <paramref name="prompts"/>, checked: [count, T] int64 with T ≤ max_position_embeddings.</summary>
    Tensor Tokens(IReadOnlyList<string> prompts)
    {
        var ids = _tokenize(prompts.Select(TextFor).ToArray());
        int max = clip.Config.TextConfig.MaxPositionEmbeddings;
        if (ids.dim() != 2 || ids.shape[0] != prompts.Count || ids.shape[1] > max || ids.dtype != int64)
            throw new InvalidInputException(
                $"{Name}: the tokenizer returned {ids.dtype} [{string.Join(",", ids.shape)}] for {prompts.Count} prompts; expected int64 [{prompts.Count}, ≤{max}]");
        return ids;
    }

    /// <summary>cos(image_i, prompt_i) [B], differentiable with respect to the images.</summary>
    public Tensor Cosine(Tensor images, IReadOnlyList<string> prompts)
    {
        using var s = Similarity(images, prompts);
        return s.Scores.alias();
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
        var s = Similarity(images, prompts);
        using var cos = s.Scores;
        return s with { Scores = FromCosine(cos) };
    }

    VisionTokenScore Similarity(Tensor images, IReadOnlyList<string> prompts)
    {
        RewardInputs.CheckImages(images, Name);
        var perImage = RewardInputs.PromptsFor(images.shape[0], prompts, Name);
        using var scope = NewDisposeScope();
        var projection = ModuleParts.Child<Linear>(clip, "visual_projection");
        Tensor text;
        using (no_grad())
        {
            var device = projection.weight!.device;
            text = clip.GetTextFeatures(Tokens(perImage).to(device));
            text = nn.functional.normalize(text, p: 2.0, dim: 1, eps: 1e-12);
        }
        var crop = Preprocess.Geometry(images.shape[2], images.shape[3]);
        var tower = clip.VisionModel.Forward(Preprocess.Apply(images));
        var image = nn.functional.normalize(projection.forward(tower.PooledOutput), p: 2.0, dim: 1, eps: 1e-12);
        var cos = (image * text).sum(1);
        foreach (var h in tower.HiddenStates) h.MoveToOuterDisposeScope();
        var cfg = clip.Config.VisionConfig;
        return new VisionTokenScore(cos.MoveToOuterDisposeScope(), tower.HiddenStates, cfg.ImageSize / cfg.PatchSize, crop);
    }

    internal static ClipModel LoadClip(string name, string folder) =>
        RewardInputs.Load($"{name} reward (expects a transformers CLIPModel folder)", folder, () => ClipModel.FromPretrained(folder));

    internal static Func<IReadOnlyList<string>, Tensor> TokenizerFrom(string tokenizerFolder, Action<string>? warn)
    {
        var tokenizer = ClipTokenizer.FromFolder(tokenizerFolder);
        return prompts => tokenizer.Tokenize(prompts, warn);
    }
}

/// <summary>
/// CLIPScore (Hessel et al. 2021, "CLIPScore: A Reference-free Evaluation Metric for Image Captioning"):
/// <c>w * max(cos(E_image, E_text), 0)</c> with w = 2.5 and each prompt prefixed with "A photo depicts", as the
/// paper's reference code does, on CLIP ViT-B/32. <c>clampNegative: false</c> drops the max (so images far
/// from their prompt still get a gradient); <c>prefix: ""</c> scores the bare prompt (torchmetrics' variant,
/// which also uses w = 100).
/// <para>
/// Weights: openai/clip-vit-base-patch32 (config.json, model.safetensors, and the tokenizer files vocab.json,
/// merges.txt, ... in the same folder). For a pytorch_model.bin only:
/// <c>python -c "from transformers import CLIPModel; CLIPModel.from_pretrained('DIR').save_pretrained('OUT', safe_serialization=True)"</c>.
/// </para>
/// </summary>
public sealed class ClipScoreReward : ClipSimilarityReward
{
    public const double PaperWeight = 2.5;
    public const string PaperPrefix = "A photo depicts";

    public double Weight { get; }
    public string Prefix { get; }
    public bool ClampNegative { get; }
    public override string Name => "clipscore";

    public ClipScoreReward(ClipModel clip, Func<IReadOnlyList<string>, Tensor> tokenize, double weight = PaperWeight,
        string prefix = PaperPrefix, bool clampNegative = true, ClipPreprocess? preprocess = null)
        : base(nameof(ClipScoreReward), clip, tokenize, preprocess)
    {
        if (!double.IsFinite(weight)) throw new InvalidInputException($"clipscore: weight must be finite, got {weight}");
        Weight = weight;
        // The reference code appends a space to a prefix that lacks one.
        Prefix = prefix.Length == 0 || prefix.EndsWith(' ') ? prefix : prefix + " ";
        ClampNegative = clampNegative;
    }

    /// <param name="clipFolder">a CLIPModel folder; <paramref name="tokenizerFolder"/> its tokenizer files (often the same folder)</param>
    public static ClipScoreReward FromPretrained(string clipFolder, string tokenizerFolder, double weight = PaperWeight,
        string prefix = PaperPrefix, bool clampNegative = true, Action<string>? warn = null) =>
        FromPretrained(clipFolder, TokenizerFrom(tokenizerFolder, warn), weight, prefix, clampNegative);

    public static ClipScoreReward FromPretrained(string clipFolder, Func<IReadOnlyList<string>, Tensor> tokenize, double weight = PaperWeight,
        string prefix = PaperPrefix, bool clampNegative = true)
    {
        var clip = LoadClip("clipscore", clipFolder);
        return new ClipScoreReward(clip, tokenize, weight, prefix, clampNegative, ClipPreprocess.Load(clipFolder, clip.Config.VisionConfig.ImageSize));
    }

    protected override string TextFor(string prompt) => Prefix + prompt;

    protected override Tensor FromCosine(Tensor cosine) =>
        ClampNegative ? cosine.clamp_min(0.0) * Weight : cosine * Weight;
}

/// <summary>
/// PickScore (Kirstain et al. 2023, yuvalkirstain/PickScore_v1, a CLIP ViT-H/14 CLIPModel fine-tuned on
/// Pick-a-Pic): <c>exp(logit_scale) * cos(E_image, E_text)</c>, the logit of the model card's snippet before
/// its softmax over candidate images. Around 20-23 for typical images.
/// <para>
/// Weights: yuvalkirstain/PickScore_v1 (config.json + model.safetensors); the tokenizer (and preprocessing)
/// come from laion/CLIP-ViT-H-14-laion2B-s32B-b79K. For a pytorch_model.bin only:
/// <c>python -c "from transformers import CLIPModel; CLIPModel.from_pretrained('DIR').save_pretrained('OUT', safe_serialization=True)"</c>.
/// </para>
/// </summary>
public sealed class PickScoreReward : ClipSimilarityReward
{
    public override string Name => "pickscore";

    public PickScoreReward(ClipModel clip, Func<IReadOnlyList<string>, Tensor> tokenize, ClipPreprocess? preprocess = null)
        : base(nameof(PickScoreReward), clip, tokenize, preprocess) { }

    /// <param name="clipFolder">PickScore_v1</param>
    /// <param name="tokenizerFolder">laion/CLIP-ViT-H-14-laion2B-s32B-b79K (its preprocessor_config.json is used when present)</param>
    public static PickScoreReward FromPretrained(string clipFolder, string tokenizerFolder, Action<string>? warn = null)
    {
        var clip = LoadClip("pickscore", clipFolder);
        int size = clip.Config.VisionConfig.ImageSize;
        var preprocess = File.Exists(Path.Combine(clipFolder, "preprocessor_config.json"))
            ? ClipPreprocess.Load(clipFolder, size) : ClipPreprocess.Load(tokenizerFolder, size);
        return new PickScoreReward(clip, TokenizerFrom(tokenizerFolder, warn), preprocess);
    }

    public static PickScoreReward FromPretrained(string clipFolder, Func<IReadOnlyList<string>, Tensor> tokenize)
    {
        var clip = LoadClip("pickscore", clipFolder);
        return new PickScoreReward(clip, tokenize, ClipPreprocess.Load(clipFolder, clip.Config.VisionConfig.ImageSize));
    }

    protected override Tensor FromCosine(Tensor cosine) => Clip.LogitScale.exp() * cosine;
}
