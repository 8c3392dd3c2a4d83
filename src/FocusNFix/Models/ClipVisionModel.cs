using FocusNFix.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>CLIPVisionModel's outputs. PooledOutput = post_layernorm(LastHiddenState[:, 0]); HiddenStates[0] is the encoder input (after pre_layrnorm).</summary>
public sealed record ClipVisionTowerOutput(Tensor LastHiddenState, Tensor PooledOutput, IReadOnlyList<Tensor> HiddenStates);

/// <summary>CLIPVisionModelWithProjection's outputs: ImageEmbeds = visual_projection(PooledOutput).</summary>
public sealed record ClipVisionOutput(Tensor ImageEmbeds, Tensor LastHiddenState, Tensor PooledOutput, IReadOnlyList<Tensor> HiddenStates);

/// <summary>CLIPVisionEmbeddings: patch conv (no bias), a prepended class token, learned positions.</summary>
public sealed class ClipVisionEmbeddings : nn.Module
{
    private readonly Parameter class_embedding;
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;
    readonly ClipVisionConfig _config;

    public ClipVisionEmbeddings(ClipVisionConfig c) : base(nameof(ClipVisionEmbeddings))
    {
        _config = c;
        // transformers' init: N(0, hidden^-0.5); replaced by any loaded checkpoint.
        class_embedding = new Parameter(torch.randn(c.HiddenSize) * Math.Pow(c.HiddenSize, -0.5));
        patch_embedding = nn.Conv2d(c.NumChannels, c.HiddenSize, c.PatchSize, stride: c.PatchSize, bias: false);
        position_embedding = nn.Embedding(c.NumPositions, c.HiddenSize);
        RegisterComponents();
    }

    public Tensor Forward(Tensor pixelValues)
    {
        var c = _config;
        if (pixelValues.dim() != 4 || pixelValues.shape[1] != c.NumChannels || pixelValues.shape[2] != c.ImageSize || pixelValues.shape[3] != c.ImageSize)
            throw new InvalidInputException(
                $"pixel_values has shape [{string.Join(", ", pixelValues.shape)}]; this vision encoder expects [batch, {c.NumChannels}, {c.ImageSize}, {c.ImageSize}] (num_channels, image_size), already normalised");
        using var scope = torch.NewDisposeScope();
        long b = pixelValues.shape[0];
        var w = patch_embedding.weight!;
        var patches = patch_embedding.forward(pixelValues.to(w.dtype, w.device)).flatten(2).transpose(1, 2);
        var cls = class_embedding.expand(b, 1, -1);
        var x = torch.cat(new[] { cls, patches }, 1);
        var positions = torch.arange(x.shape[1], dtype: int64, device: x.device).unsqueeze(0);
        return (x + position_embedding.forward(positions)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// CLIPVisionTransformer (the <c>vision_model</c> of the vision classes): embeddings, pre_layrnorm (sic, the
/// checkpoint spelling), encoder without masks, post_layernorm on the class token only.
/// </summary>
public sealed class ClipVisionTransformer : nn.Module
{
    private readonly ClipVisionEmbeddings embeddings;
    private readonly LayerNorm pre_layrnorm;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm post_layernorm;

    public ClipVisionConfig Config { get; }

    public ClipVisionTransformer(ClipVisionConfig config) : base(nameof(ClipVisionTransformer))
    {
        config.Validate();
        Config = config;
        embeddings = new ClipVisionEmbeddings(config);
        pre_layrnorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        encoder = new ClipEncoder(config);
        post_layernorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    public ClipVisionTowerOutput Forward(Tensor pixelValues)
    {
        using var scope = torch.NewDisposeScope();
        var x = pre_layrnorm.forward(embeddings.Forward(pixelValues));
        var hidden = new List<Tensor>();
        var last = encoder.Forward(x, hiddenStates: hidden);
        var pooled = post_layernorm.forward(last.select(1, 0));
        foreach (var h in hidden) h.MoveToOuterDisposeScope();
        return new ClipVisionTowerOutput(last, pooled.MoveToOuterDisposeScope(), hidden);
    }
}

/// <summary>transformers' CLIPVisionModel (keys <c>vision_model.*</c>); the safety checker's vision tower.</summary>
public sealed class ClipVisionModel : nn.Module
{
    private readonly ClipVisionTransformer vision_model;

    public ClipVisionModel(ClipVisionConfig config) : base(nameof(ClipVisionModel))
    {
        vision_model = new ClipVisionTransformer(config);
        RegisterComponents();
    }

    public ClipVisionConfig Config => vision_model.Config;
    public ClipVisionTransformer VisionModel => vision_model;

    /// <param name="pixelValues">[B, C, image_size, image_size], already normalised by the image processor</param>
    public ClipVisionTowerOutput Forward(Tensor pixelValues) => vision_model.Forward(pixelValues);

    public static ClipVisionModel FromPretrained(string folder)
    {
        var config = ClipVisionConfig.Load(Path.Combine(folder, "config.json"));
        ClipLoading.RequireArchitecture(config.Architectures, folder, ClipLoading.VisionArchitectures);
        var model = new ClipVisionModel(config);
        ClipLoading.LoadTower(model, folder, config.Architectures, "vision_model.");
        return model;
    }
}

/// <summary>transformers' CLIPVisionModelWithProjection (IP-Adapter image encoders): <c>vision_model.*</c> plus <c>visual_projection.weight</c>.</summary>
public sealed class ClipVisionModelWithProjection : nn.Module
{
    private readonly ClipVisionTransformer vision_model;
    private readonly Linear visual_projection;

    public ClipVisionModelWithProjection(ClipVisionConfig config) : base(nameof(ClipVisionModelWithProjection))
    {
        vision_model = new ClipVisionTransformer(config);
        visual_projection = nn.Linear(config.HiddenSize, config.ProjectionDim, hasBias: false);
        RegisterComponents();
    }

    public ClipVisionConfig Config => vision_model.Config;
    public ClipVisionTransformer VisionModel => vision_model;

    /// <param name="pixelValues">[B, C, image_size, image_size], already normalised by the image processor</param>
    public ClipVisionOutput Forward(Tensor pixelValues)
    {
        var o = vision_model.Forward(pixelValues);
        return new ClipVisionOutput(visual_projection.forward(o.PooledOutput), o.LastHiddenState, o.PooledOutput, o.HiddenStates);
    }

    public static ClipVisionModelWithProjection FromPretrained(string folder)
    {
        var config = ClipVisionConfig.Load(Path.Combine(folder, "config.json"));
        ClipLoading.RequireArchitecture(config.Architectures, folder, ClipLoading.VisionArchitectures);
        var model = new ClipVisionModelWithProjection(config);
        // From a full CLIPModel the top-level visual_projection comes along; its width must equal vision_config.projection_dim.
        ClipLoading.LoadTower(model, folder, config.Architectures, "vision_model.", new[] { "visual_projection.weight" });
        return model;
    }
}

/// <summary>
/// transformers' CLIPModel: both towers, text_projection and visual_projection (no bias, joint projection_dim)
/// and logit_scale. Keys: <c>text_model.*</c>, <c>vision_model.*</c>, <c>text_projection.weight</c>,
/// <c>visual_projection.weight</c>, <c>logit_scale</c>.
/// </summary>
public sealed class ClipModel : nn.Module
{
    private readonly ClipTextTransformer text_model;
    private readonly ClipVisionTransformer vision_model;
    private readonly Linear visual_projection;
    private readonly Linear text_projection;
    private readonly Parameter logit_scale;

    public ClipConfig Config { get; }

    public ClipModel(ClipConfig config) : base(nameof(ClipModel))
    {
        Config = config;
        text_model = new ClipTextTransformer(config.TextConfig);
        vision_model = new ClipVisionTransformer(config.VisionConfig);
        visual_projection = nn.Linear(config.VisionConfig.HiddenSize, config.ProjectionDim, hasBias: false);
        text_projection = nn.Linear(config.TextConfig.HiddenSize, config.ProjectionDim, hasBias: false);
        logit_scale = new Parameter(torch.tensor((float)config.LogitScaleInitValue));
        RegisterComponents();
    }

    public ClipTextTransformer TextModel => text_model;
    public ClipVisionTransformer VisionModel => vision_model;
    public Tensor LogitScale => logit_scale;

    /// <summary>get_text_features: text_projection(pooled output), not normalised.</summary>
    public Tensor GetTextFeatures(Tensor inputIds, Tensor? attentionMask = null)
    {
        using var scope = torch.NewDisposeScope();
        return text_projection.forward(text_model.Forward(inputIds, attentionMask).PooledOutput).MoveToOuterDisposeScope();
    }

    /// <summary>get_image_features: visual_projection(pooled output), not normalised.</summary>
    public Tensor GetImageFeatures(Tensor pixelValues)
    {
        using var scope = torch.NewDisposeScope();
        return visual_projection.forward(vision_model.Forward(pixelValues).PooledOutput).MoveToOuterDisposeScope();
    }

    /// <summary>logits_per_image [images, texts] = exp(logit_scale) * cos(image, text); logits_per_text is its transpose.</summary>
    public (Tensor LogitsPerImage, Tensor LogitsPerText) Forward(Tensor inputIds, Tensor pixelValues, Tensor? attentionMask = null)
    {
        using var scope = torch.NewDisposeScope();
        var image = GetImageFeatures(pixelValues);
        var text = GetTextFeatures(inputIds, attentionMask);
        image = image / image.norm(1, true, 2);
        text = text / text.norm(1, true, 2);
        var perText = torch.matmul(text, image.t()) * logit_scale.exp();
        var perImage = perText.t();
        return (perImage.MoveToOuterDisposeScope(), perText.MoveToOuterDisposeScope());
    }

    public static ClipModel FromPretrained(string folder)
    {
        var config = ClipConfig.Load(Path.Combine(folder, "config.json"));
        ClipLoading.RequireArchitecture(config.Architectures, folder, new[] { "CLIPModel" });
        var model = new ClipModel(config);
        StateDict.LoadFile(model, WeightFiles.Find(folder, "model"));
        return model;
    }
}
