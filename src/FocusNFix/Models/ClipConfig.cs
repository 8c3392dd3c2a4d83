using FocusNFix.IO;

namespace FocusNFix.Models;

/// <summary>What the shared CLIP encoder needs from either tower's config.</summary>
public interface IClipEncoderConfig
{
    int HiddenSize { get; }
    int IntermediateSize { get; }
    int NumHiddenLayers { get; }
    int NumAttentionHeads { get; }
    string HiddenAct { get; }
    double LayerNormEps { get; }
}

/// <summary>
/// transformers' CLIPTextConfig (model_type "clip_text_model"). Defaults are transformers' defaults,
/// so a config.json that omits a key behaves as it does in Python.
/// </summary>
public sealed record ClipTextConfig : IClipEncoderConfig
{
    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 512;
    public int IntermediateSize { get; init; } = 2048;
    public int ProjectionDim { get; init; } = 512;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 8;
    public int MaxPositionEmbeddings { get; init; } = 77;
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;
    public int PadTokenId { get; init; } = 1;
    public int BosTokenId { get; init; } = 49406;
    /// <summary>2 in the real SD1.x/SD2 configs, which switches pooling to the legacy argmax rule.</summary>
    public int EosTokenId { get; init; } = 49407;
    /// <summary>The config's "architectures" list (empty when absent).</summary>
    public IReadOnlyList<string> Architectures { get; init; } = Array.Empty<string>();

    public const string ModelType = "clip_text_model";

    /// <summary>Reads a text config; a full CLIPConfig (model_type "clip") contributes its text_config, as in transformers.</summary>
    public static ClipTextConfig Load(string path) => FromJson(JsonConfig.Load(path));

    public static ClipTextConfig FromJson(JsonConfig json)
    {
        var (tower, architectures) = ClipConfigReading.Tower(json, "text_config", ModelType);
        var c = new ClipTextConfig();
        c = c with
        {
            VocabSize = tower.Int("vocab_size", c.VocabSize),
            HiddenSize = tower.Int("hidden_size", c.HiddenSize),
            IntermediateSize = tower.Int("intermediate_size", c.IntermediateSize),
            ProjectionDim = tower.Int("projection_dim", c.ProjectionDim),
            NumHiddenLayers = tower.Int("num_hidden_layers", c.NumHiddenLayers),
            NumAttentionHeads = tower.Int("num_attention_heads", c.NumAttentionHeads),
            MaxPositionEmbeddings = tower.Int("max_position_embeddings", c.MaxPositionEmbeddings),
            HiddenAct = tower.String("hidden_act", c.HiddenAct)!,
            LayerNormEps = tower.Double("layer_norm_eps", c.LayerNormEps),
            PadTokenId = tower.Int("pad_token_id", c.PadTokenId),
            BosTokenId = tower.Int("bos_token_id", c.BosTokenId),
            EosTokenId = tower.Int("eos_token_id", c.EosTokenId),
            Architectures = architectures,
        };
        c.Validate(tower.Source);
        return c;
    }

    /// <summary>Throws <see cref="InvalidInputException"/> naming <paramref name="source"/> when a value cannot build a model.</summary>
    public void Validate(string source = "ClipTextConfig")
    {
        ClipConfigReading.ValidateEncoder(this, source);
        ClipConfigReading.Positive(source, ("vocab_size", VocabSize), ("max_position_embeddings", MaxPositionEmbeddings), ("projection_dim", ProjectionDim));
        ModelSizeEstimate.CheckPlausible(ModelSizeEstimate.Parameters(this), source, "CLIP text", ClipConfigReading.SizeFields(this) +
            $", vocab_size {VocabSize}, max_position_embeddings {MaxPositionEmbeddings}");
    }
}

/// <summary>transformers' CLIPVisionConfig (model_type "clip_vision_model").</summary>
public sealed record ClipVisionConfig : IClipEncoderConfig
{
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int ProjectionDim { get; init; } = 512;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int NumChannels { get; init; } = 3;
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 32;
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;
    public IReadOnlyList<string> Architectures { get; init; } = Array.Empty<string>();

    public const string ModelType = "clip_vision_model";

    /// <summary>Patch tokens plus the class token.</summary>
    public int NumPositions => (ImageSize / PatchSize) * (ImageSize / PatchSize) + 1;

    /// <summary>Reads a vision config; a full CLIPConfig (model_type "clip") contributes its vision_config.</summary>
    public static ClipVisionConfig Load(string path) => FromJson(JsonConfig.Load(path));

    public static ClipVisionConfig FromJson(JsonConfig json)
    {
        var (tower, architectures) = ClipConfigReading.Tower(json, "vision_config", ModelType);
        var c = new ClipVisionConfig();
        c = c with
        {
            HiddenSize = tower.Int("hidden_size", c.HiddenSize),
            IntermediateSize = tower.Int("intermediate_size", c.IntermediateSize),
            ProjectionDim = tower.Int("projection_dim", c.ProjectionDim),
            NumHiddenLayers = tower.Int("num_hidden_layers", c.NumHiddenLayers),
            NumAttentionHeads = tower.Int("num_attention_heads", c.NumAttentionHeads),
            NumChannels = tower.Int("num_channels", c.NumChannels),
            ImageSize = tower.Int("image_size", c.ImageSize),
            PatchSize = tower.Int("patch_size", c.PatchSize),
            HiddenAct = tower.String("hidden_act", c.HiddenAct)!,
            LayerNormEps = tower.Double("layer_norm_eps", c.LayerNormEps),
            Architectures = architectures,
        };
        c.Validate(tower.Source);
        return c;
    }

    public void Validate(string source = "ClipVisionConfig")
    {
        ClipConfigReading.ValidateEncoder(this, source);
        ClipConfigReading.Positive(source, ("num_channels", NumChannels), ("image_size", ImageSize), ("patch_size", PatchSize), ("projection_dim", ProjectionDim));
        if (PatchSize > ImageSize)
            throw new InvalidInputException($"{source}: patch_size {PatchSize} is larger than image_size {ImageSize}");
        ModelSizeEstimate.CheckPlausible(ModelSizeEstimate.Parameters(this), source, "CLIP vision", ClipConfigReading.SizeFields(this) +
            $", image_size {ImageSize}, patch_size {PatchSize}");
    }
}

/// <summary>
/// transformers' CLIPConfig (model_type "clip"): both towers plus the joint projection width. Also the
/// config of diffusers' StableDiffusionSafetyChecker, which uses only vision_config and projection_dim.
/// </summary>
public sealed record ClipConfig
{
    public ClipTextConfig TextConfig { get; init; } = new();
    public ClipVisionConfig VisionConfig { get; init; } = new();
    /// <summary>Width of text_projection/visual_projection; the towers' own projection_dim is not used by CLIPModel.</summary>
    public int ProjectionDim { get; init; } = 512;
    public double LogitScaleInitValue { get; init; } = 2.6592;
    public IReadOnlyList<string> Architectures { get; init; } = Array.Empty<string>();

    public const string ModelType = "clip";

    public static ClipConfig Load(string path) => FromJson(JsonConfig.Load(path));

    public static ClipConfig FromJson(JsonConfig json)
    {
        var modelType = json.String("model_type");
        if (modelType != null && modelType != ModelType)
            throw new InvalidInputException($"{json.Source}: model_type '{modelType}' is not a full CLIP config (expected '{ModelType}' with text_config and vision_config)");
        var c = new ClipConfig();
        var projection = json.Int("projection_dim", c.ProjectionDim);
        if (projection <= 0) throw new InvalidInputException($"{json.Source}: projection_dim must be positive, got {projection}");
        return c with
        {
            // An absent tower config means transformers' defaults, as CLIPConfig does.
            TextConfig = json.Child("text_config") is { } t ? ClipTextConfig.FromJson(t) : c.TextConfig,
            VisionConfig = json.Child("vision_config") is { } v ? ClipVisionConfig.FromJson(v) : c.VisionConfig,
            ProjectionDim = projection,
            LogitScaleInitValue = json.Double("logit_scale_init_value", c.LogitScaleInitValue),
            Architectures = json.StringList("architectures") ?? Array.Empty<string>(),
        };
    }
}

static class ClipConfigReading
{
    /// <summary>
    /// The object that holds a tower's keys: the file itself, or its <paramref name="childKey"/> when the file
    /// is a full CLIPConfig. A config of the other tower is refused, naming what was found.
    /// </summary>
    public static (JsonConfig Tower, string[] Architectures) Tower(JsonConfig json, string childKey, string modelType)
    {
        var architectures = json.StringList("architectures") ?? Array.Empty<string>();
        var found = json.String("model_type");
        if (found == ClipConfig.ModelType || (found == null && json.Has(childKey)))
        {
            var child = json.Child(childKey) ?? new JsonConfig(new System.Text.Json.Nodes.JsonObject(), $"{json.Source}#{childKey}");
            var childType = child.String("model_type");
            if (childType != null && childType != modelType)
                throw new InvalidInputException($"{child.Source}: model_type '{childType}', expected '{modelType}'");
            return (child, architectures);
        }
        if (found != null && found != modelType)
            throw new InvalidInputException($"{json.Source}: model_type '{found}' ({string.Join(", ", architectures)}), expected '{modelType}' or '{ClipConfig.ModelType}'");
        return (json, architectures);
    }

    public static void ValidateEncoder(IClipEncoderConfig c, string source)
    {
        Positive(source, ("hidden_size", c.HiddenSize), ("intermediate_size", c.IntermediateSize),
            ("num_attention_heads", c.NumAttentionHeads));
        if (c.NumHiddenLayers < 0) throw new InvalidInputException($"{source}: num_hidden_layers must be >= 0, got {c.NumHiddenLayers}");
        if (c.HiddenSize % c.NumAttentionHeads != 0)
            throw new InvalidInputException($"{source}: hidden_size {c.HiddenSize} is not divisible by num_attention_heads {c.NumAttentionHeads}");
        if (!(c.LayerNormEps > 0) || !double.IsFinite(c.LayerNormEps))
            throw new InvalidInputException($"{source}: layer_norm_eps must be a positive finite number, got {c.LayerNormEps}");
        ClipActivation.Get(c.HiddenAct, source);
    }

    public static string SizeFields(IClipEncoderConfig c) =>
        $"hidden_size {c.HiddenSize}, intermediate_size {c.IntermediateSize}, num_hidden_layers {c.NumHiddenLayers}";

    public static void Positive(string source, params (string Key, int Value)[] values)
    {
        foreach (var (key, value) in values)
            if (value <= 0) throw new InvalidInputException($"{source}: '{key}' must be a positive integer, got {value}");
    }
}
