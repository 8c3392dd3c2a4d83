using FocusNFix.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>CLIPTextModel's outputs. HiddenStates[0] is the embeddings output, HiddenStates[i] the output of layer i (no final LN).</summary>
public sealed record ClipTextOutput(Tensor LastHiddenState, Tensor PooledOutput, IReadOnlyList<Tensor> HiddenStates);

/// <summary>CLIPTextModelWithProjection's outputs: TextEmbeds = text_projection(pooled output).</summary>
public sealed record ClipTextProjectionOutput(Tensor TextEmbeds, Tensor LastHiddenState, Tensor PooledOutput, IReadOnlyList<Tensor> HiddenStates);

/// <summary>CLIPTextEmbeddings: token plus learned absolute position embeddings (position_ids is not a weight).</summary>
public sealed class ClipTextEmbeddings : nn.Module
{
    private readonly Embedding token_embedding;
    private readonly Embedding position_embedding;

    public ClipTextEmbeddings(ClipTextConfig c) : base(nameof(ClipTextEmbeddings))
    {
        token_embedding = nn.Embedding(c.VocabSize, c.HiddenSize);
        position_embedding = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        RegisterComponents();
    }

    public Tensor Forward(Tensor inputIds)
    {
        using var scope = torch.NewDisposeScope();
        long length = inputIds.shape[^1];
        var positions = torch.arange(length, dtype: int64, device: inputIds.device).unsqueeze(0);
        return (token_embedding.forward(inputIds) + position_embedding.forward(positions)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// CLIPTextTransformer (the <c>text_model</c> of CLIPTextModel, CLIPTextModelWithProjection and CLIPModel):
/// embeddings, causal encoder, final_layer_norm and pooling at the eos position.
/// </summary>
public sealed class ClipTextTransformer : nn.Module
{
    private readonly ClipTextEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm final_layer_norm;

    public ClipTextConfig Config { get; }

    public ClipTextTransformer(ClipTextConfig config) : base(nameof(ClipTextTransformer))
    {
        config.Validate();
        Config = config;
        embeddings = new ClipTextEmbeddings(config);
        encoder = new ClipEncoder(config);
        final_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    /// <summary>final_layer_norm, for clip-skip embeddings taken from an earlier hidden state.</summary>
    public Tensor FinalLayerNorm(Tensor hidden) => final_layer_norm.forward(hidden);

    public ClipTextOutput Forward(Tensor inputIds, Tensor? attentionMask = null)
    {
        using var scope = torch.NewDisposeScope();
        var ids = CheckIds(inputIds);
        var hidden = new List<Tensor>();
        var last = Encode(ids, attentionMask, null, hidden);
        var lastHidden = final_layer_norm.forward(last);
        var pooled = Pool(lastHidden, ids);
        foreach (var h in hidden) h.MoveToOuterDisposeScope();
        return new ClipTextOutput(lastHidden.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope(), hidden);
    }

    /// <summary>
    /// Prompt embeddings with diffusers' clip_skip: k = 0 gives last_hidden_state; k &gt; 0 gives
    /// final_layer_norm(hidden_states[-(k+1)]). The last k layers are not run at all.
    /// </summary>
    public Tensor EncodePrompt(Tensor inputIds, int clipSkip = 0, Tensor? attentionMask = null)
    {
        if (clipSkip < 0 || clipSkip > Config.NumHiddenLayers)
            throw new InvalidInputException($"clip_skip {clipSkip} is out of range: this text encoder has {Config.NumHiddenLayers} layers (expected 0..{Config.NumHiddenLayers})");
        using var scope = torch.NewDisposeScope();
        var ids = CheckIds(inputIds);
        var h = Encode(ids, attentionMask, Config.NumHiddenLayers - clipSkip, null);
        return final_layer_norm.forward(h).MoveToOuterDisposeScope();
    }

    Tensor Encode(Tensor ids, Tensor? attentionMask, int? numLayers, List<Tensor>? hidden)
    {
        var x = embeddings.Forward(ids);
        var causal = ClipMasks.Causal(ids.shape[1], x.dtype, x.device);
        Tensor? padding = null;
        if (attentionMask is not null)
        {
            if (!attentionMask.shape.SequenceEqual(ids.shape))
                throw new InvalidInputException($"attention_mask has shape [{string.Join(", ", attentionMask.shape)}], expected the input_ids shape [{string.Join(", ", ids.shape)}]");
            padding = ClipMasks.Padding(attentionMask.to(x.device), x.dtype);
        }
        return encoder.Forward(x, causal, padding, numLayers, hidden);
    }

    /// <summary>
    /// The eos position: transformers at the reference version keeps the legacy argmax over ids when
    /// eos_token_id == 2 (old SD configs) and otherwise takes the first id equal to eos_token_id (0 if none).
    /// </summary>
    public Tensor PoolPositions(Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        var idx = Config.EosTokenId == 2
            ? ids.to(int32).argmax(-1)
            : ids.eq(Config.EosTokenId).to(int32).argmax(-1);
        return idx.MoveToOuterDisposeScope();
    }

    Tensor Pool(Tensor lastHidden, Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        var idx = PoolPositions(ids).to(lastHidden.device).view(-1, 1, 1).expand(-1, 1, lastHidden.shape[2]);
        return lastHidden.gather(1, idx).squeeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>Validates [B, T] ids (T up to max_position_embeddings, values in the vocabulary) and returns them as int64.</summary>
    Tensor CheckIds(Tensor inputIds)
    {
        if (inputIds.dim() != 2)
            throw new InvalidInputException($"input_ids must be [batch, length], got shape [{string.Join(", ", inputIds.shape)}]");
        if (inputIds.is_floating_point() || inputIds.dtype == ScalarType.Bool)
            throw new InvalidInputException($"input_ids must be integer token ids, got dtype {inputIds.dtype}");
        long length = inputIds.shape[1];
        if (length < 1 || length > Config.MaxPositionEmbeddings)
            throw new InvalidInputException($"input_ids has length {length}; this text encoder accepts 1..{Config.MaxPositionEmbeddings} tokens (max_position_embeddings)");
        if (inputIds.numel() > 0)
        {
            long lo = inputIds.min().item<long>(), hi = inputIds.max().item<long>();
            if (lo < 0 || hi >= Config.VocabSize)
                throw new InvalidInputException($"input_ids contain id {(lo < 0 ? lo : hi)} outside the vocabulary [0, {Config.VocabSize}) (vocab_size)");
        }
        var device = ModelDevice();
        return inputIds.to(int64, device);
    }

    Device ModelDevice() => final_layer_norm.weight!.device;
}

/// <summary>
/// transformers' CLIPTextModel (state-dict keys <c>text_model.*</c>). Loads SD text encoders; see
/// <see cref="EncodePrompt"/> for diffusers' clip-skip.
/// </summary>
public sealed class ClipTextModel : nn.Module
{
    private readonly ClipTextTransformer text_model;

    public ClipTextModel(ClipTextConfig config) : base(nameof(ClipTextModel))
    {
        text_model = new ClipTextTransformer(config);
        RegisterComponents();
    }

    public ClipTextConfig Config => text_model.Config;
    public ClipTextTransformer TextModel => text_model;

    public ClipTextOutput Forward(Tensor inputIds, Tensor? attentionMask = null) => text_model.Forward(inputIds, attentionMask);

    /// <summary>clip-skip k &gt; 0: final_layer_norm(hidden_states[-(k+1)]) as diffusers does; k = 0: last_hidden_state.</summary>
    /// <remarks>SD pipelines pass no mask; <paramref name="attentionMask"/> is for configs with use_attention_mask.</remarks>
    public Tensor EncodePrompt(Tensor inputIds, int clipSkip = 0, Tensor? attentionMask = null) => text_model.EncodePrompt(inputIds, clipSkip, attentionMask);

    /// <summary>config.json (a CLIPTextConfig, or a CLIPConfig's text_config) plus model.safetensors, loaded strictly.</summary>
    public static ClipTextModel FromPretrained(string folder)
    {
        var config = ClipTextConfig.Load(Path.Combine(folder, "config.json"));
        ClipLoading.RequireArchitecture(config.Architectures, folder, ClipLoading.TextArchitectures);
        var model = new ClipTextModel(config);
        ClipLoading.LoadTower(model, folder, config.Architectures, "text_model.");
        return model;
    }
}

/// <summary>transformers' CLIPTextModelWithProjection (SDXL's second text encoder): <c>text_model.*</c> plus <c>text_projection.weight</c>.</summary>
public sealed class ClipTextModelWithProjection : nn.Module
{
    private readonly ClipTextTransformer text_model;
    private readonly Linear text_projection;

    public ClipTextModelWithProjection(ClipTextConfig config) : base(nameof(ClipTextModelWithProjection))
    {
        text_model = new ClipTextTransformer(config);
        text_projection = nn.Linear(config.HiddenSize, config.ProjectionDim, hasBias: false);
        RegisterComponents();
    }

    public ClipTextConfig Config => text_model.Config;
    public ClipTextTransformer TextModel => text_model;

    public ClipTextProjectionOutput Forward(Tensor inputIds, Tensor? attentionMask = null)
    {
        var o = text_model.Forward(inputIds, attentionMask);
        return new ClipTextProjectionOutput(text_projection.forward(o.PooledOutput), o.LastHiddenState, o.PooledOutput, o.HiddenStates);
    }

    public Tensor EncodePrompt(Tensor inputIds, int clipSkip = 0) => text_model.EncodePrompt(inputIds, clipSkip);

    public static ClipTextModelWithProjection FromPretrained(string folder)
    {
        var config = ClipTextConfig.Load(Path.Combine(folder, "config.json"));
        ClipLoading.RequireArchitecture(config.Architectures, folder, ClipLoading.TextArchitectures);
        var model = new ClipTextModelWithProjection(config);
        ClipLoading.LoadTower(model, folder, config.Architectures, "text_model.", new[] { "text_projection.weight" });
        return model;
    }
}

/// <summary>Shared loading rules of the CLIP classes.</summary>
static class ClipLoading
{
    public static readonly string[] TextArchitectures = { "CLIPTextModel", "CLIPTextModelWithProjection", "CLIPModel" };
    public static readonly string[] VisionArchitectures = { "CLIPVisionModel", "CLIPVisionModelWithProjection", "CLIPModel" };

    /// <summary>A config that names some other architecture (a UNet, a vision tower for a text model) is refused up front.</summary>
    public static void RequireArchitecture(IReadOnlyList<string> architectures, string folder, string[] accepted)
    {
        if (architectures.Count == 0 || architectures.Any(accepted.Contains)) return;
        throw new InvalidInputException(
            $"{Path.Combine(folder, "config.json")}: architectures [{string.Join(", ", architectures)}] is not one this class loads (expected one of {string.Join(", ", accepted)})");
    }

    /// <summary>
    /// Strictly loads a tower. From a full CLIPModel checkpoint only the keys under <paramref name="prefix"/>
    /// are taken (transformers does the same, with a warning about the unused rest); otherwise every key must match.
    /// </summary>
    public static void LoadTower(nn.Module model, string folder, IReadOnlyList<string> architectures, string prefix, string[]? extraKeys = null)
    {
        var path = WeightFiles.Find(folder, "model");
        if (!architectures.Contains("CLIPModel")) { StateDict.LoadFile(model, path); return; }
        var all = Safetensors.Load(path);
        try
        {
            var keep = all.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal) || (extraKeys?.Contains(kv.Key) ?? false))
                .ToDictionary(kv => kv.Key, kv => kv.Value);
            StateDict.LoadStrict(model, keep, path);
        }
        finally { foreach (var t in all.Values) t.Dispose(); }
    }
}
