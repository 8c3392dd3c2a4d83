using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// The MLP of LAION's improved-aesthetic-predictor (christophschuhmann/improved-aesthetic-predictor): five
/// Linear layers with no activation, keys <c>layers.{0,2,4,6,7}.weight/bias</c> (1, 3 and 5 are Dropout,
/// which has no weights). The published sac+logos+ava1-l14-linearMSE has widths 768 → 1024 → 128 → 64 → 16 → 1;
/// <see cref="Load"/> takes the widths from the file, so smaller variants load too.
/// </summary>
public sealed class AestheticMlp : nn.Module
{
    static readonly int[] LinearSlots = { 0, 2, 4, 6, 7 };

    private readonly Sequential layers;

    public int InputSize { get; }

    /// <param name="widths">the four hidden widths (published: 1024, 128, 64, 16)</param>
    public AestheticMlp(int inputSize = 768, int[]? widths = null) : base(nameof(AestheticMlp))
    {
        widths ??= new[] { 1024, 128, 64, 16 };
        if (widths.Length != 4 || widths.Any(w => w <= 0) || inputSize <= 0)
            throw new InvalidInputException($"aesthetic MLP: needs a positive input size and 4 positive hidden widths, got {inputSize} and [{string.Join(",", widths)}]");
        InputSize = inputSize;
        // Dropout only matters for training the predictor; Identity keeps the slot numbering of the keys.
        layers = nn.Sequential(
            ("0", nn.Linear(inputSize, widths[0])), ("1", nn.Identity()),
            ("2", nn.Linear(widths[0], widths[1])), ("3", nn.Identity()),
            ("4", nn.Linear(widths[1], widths[2])), ("5", nn.Identity()),
            ("6", nn.Linear(widths[2], widths[3])),
            ("7", nn.Linear(widths[3], 1)));
        RegisterComponents();
    }

    /// <summary>[B, InputSize] L2-normalised image embeddings to [B, 1] predicted ratings.</summary>
    public Tensor Forward(Tensor embeds) => layers.forward(embeds);

    /// <summary>Loads the MLP from a safetensors file holding its state dict (see <see cref="AestheticReward"/>).</summary>
    public static AestheticMlp Load(string path)
    {
        WeightFiles.RefusePickle(path);
        InputFile.RequireFile(path, "aesthetic predictor weight file");
        var weights = Safetensors.Load(path);
        try
        {
            var expected = LinearSlots.SelectMany(i => new[] { $"layers.{i}.weight", $"layers.{i}.bias" }).ToArray();
            var missing = expected.Where(k => !weights.ContainsKey(k)).ToList();
            if (missing.Count > 0)
                throw new InvalidInputException(
                    $"{path}: not a LAION aesthetic predictor MLP (improved-aesthetic-predictor): it lacks {string.Join(", ", missing.Take(6))}" +
                    (missing.Count > 6 ? $" and {missing.Count - 6} more" : "") +
                    $"; expected layers.{{0,2,4,6,7}}.weight/bias; the file holds {weights.Count} tensors, e.g. {string.Join(", ", weights.Keys.OrderBy(k => k).Take(4))}");
            var shapes = LinearSlots.Select(i => weights[$"layers.{i}.weight"].shape).ToArray();
            bool chain = shapes.All(s => s.Length == 2) && shapes[^1][0] == 1;
            for (int i = 1; chain && i < shapes.Length; i++) chain = shapes[i][1] == shapes[i - 1][0];
            if (!chain)
                throw new InvalidInputException(
                    $"{path}: aesthetic MLP weights do not chain into input → ... → 1: shapes {string.Join(" ", shapes.Select(s => "[" + string.Join(",", s) + "]"))}");
            var mlp = new AestheticMlp((int)shapes[0][1], shapes.Take(4).Select(s => (int)s[0]).ToArray());
            StateDict.LoadStrict(mlp, weights, path);
            return mlp;
        }
        finally { foreach (var t in weights.Values) t.Dispose(); }
    }
}

/// <summary>
/// LAION's aesthetic score: the improved-aesthetic-predictor MLP over the L2-normalised CLIP ViT-L/14 image
/// embedding (openai/clip-vit-large-patch14, i.e. OpenAI CLIP's encode_image). Predicts a 1-10 rating; higher is better.
/// <para>
/// Weights: <c>clipFolder</c> = openai/clip-vit-large-patch14 (config.json + model.safetensors; a CLIPModel
/// or CLIPVisionModelWithProjection: only vision_model.* and visual_projection are read). <c>mlpPath</c> =
/// sac+logos+ava1-l14-linearMSE.pth from the improved-aesthetic-predictor repository, converted once:
/// <c>python -c "import torch; from safetensors.torch import save_file; save_file(torch.load('sac+logos+ava1-l14-linearMSE.pth', map_location='cpu'), 'aesthetic.safetensors')"</c>.
/// </para>
/// </summary>
public sealed class AestheticReward : nn.Module, IVisionTokenReward
{
    private readonly ClipVisionModelWithProjection vision;
    private readonly AestheticMlp mlp;

    public ClipPreprocess Preprocess { get; }
    public string Name => "aesthetic";

    public AestheticReward(ClipVisionModelWithProjection vision, AestheticMlp mlp, ClipPreprocess? preprocess = null) : base(nameof(AestheticReward))
    {
        long width = ModuleParts.Child<Linear>(vision, "visual_projection").weight!.shape[0];
        if (width != mlp.InputSize)
            throw new InvalidInputException(
                $"aesthetic reward: the MLP takes {mlp.InputSize}-d embeddings but the CLIP vision model gives {width}-d " +
                "(the published predictor needs CLIP ViT-L/14, 768-d: openai/clip-vit-large-patch14)");
        this.vision = vision;
        this.mlp = mlp;
        Preprocess = preprocess ?? ClipPreprocess.OpenAi(vision.Config.ImageSize);
        if (Preprocess.CropSize != vision.Config.ImageSize)
            throw new InvalidInputException($"aesthetic reward: preprocessing crops {Preprocess.CropSize} but the vision tower takes {vision.Config.ImageSize}");
        RegisterComponents();
        RewardInputs.Freeze(this);
    }

    public static AestheticReward FromPretrained(string clipFolder, string mlpPath)
    {
        var vision = RewardInputs.Load("aesthetic reward (expects a CLIP ViT-L/14 folder: CLIPModel or CLIPVisionModelWithProjection)", clipFolder,
            () => ClipVisionModelWithProjection.FromPretrained(clipFolder));
        return new AestheticReward(vision, AestheticMlp.Load(mlpPath), ClipPreprocess.Load(clipFolder, vision.Config.ImageSize));
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
        var o = vision.Forward(Preprocess.Apply(images));
        var embeds = nn.functional.normalize(o.ImageEmbeds, p: 2.0, dim: 1, eps: 1e-12);
        var scores = mlp.Forward(embeds).squeeze(1);
        foreach (var h in o.HiddenStates) h.MoveToOuterDisposeScope();
        var cfg = vision.Config;
        return new VisionTokenScore(scores.MoveToOuterDisposeScope(), o.HiddenStates, cfg.ImageSize / cfg.PatchSize, crop);
    }
}
