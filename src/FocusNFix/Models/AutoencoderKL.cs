using System.Text.RegularExpressions;
using FocusNFix.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>The parts of a diffusers <c>AutoencoderKL</c> config.json that the model uses.</summary>
public sealed class AutoencoderKLConfig
{
    public static readonly string[] SupportedDownBlocks = { "DownEncoderBlock2D" };
    public static readonly string[] SupportedUpBlocks = { "UpDecoderBlock2D" };

    public string Source = "(in code)";
    public int InChannels = 3, OutChannels = 3, LatentChannels = 4;
    public int[] BlockOutChannels = { 64 };
    public string[] DownBlockTypes = { "DownEncoderBlock2D" };
    public string[] UpBlockTypes = { "UpDecoderBlock2D" };
    public int LayersPerBlock = 1;
    public int NormNumGroups = 32;
    public int SampleSize = 32;
    /// <summary>Pipelines multiply encoded latents by this and divide by it before decoding; the model itself does not.</summary>
    public double ScalingFactor = 0.18215;
    public bool ForceUpcast = true;
    /// <summary>Keys of newer diffusers versions; 0.27 always has all three.</summary>
    public bool MidBlockAddAttention = true, UseQuantConv = true, UsePostQuantConv = true;

    public static AutoencoderKLConfig FromJson(JsonConfig c)
    {
        var cfg = new AutoencoderKLConfig { Source = c.Source };
        var act = c.String("act_fn", "silu");
        if (act != "silu") throw new InvalidInputException($"{c.Source}: 'act_fn' = \"{act}\" is not supported (only \"silu\")");
        cfg.InChannels = c.Int("in_channels", cfg.InChannels);
        cfg.OutChannels = c.Int("out_channels", cfg.OutChannels);
        cfg.LatentChannels = c.Int("latent_channels", cfg.LatentChannels);
        cfg.BlockOutChannels = c.IntList("block_out_channels") ?? cfg.BlockOutChannels;
        cfg.DownBlockTypes = c.StringList("down_block_types") ?? cfg.DownBlockTypes;
        cfg.UpBlockTypes = c.StringList("up_block_types") ?? cfg.UpBlockTypes;
        cfg.LayersPerBlock = c.Int("layers_per_block", cfg.LayersPerBlock);
        cfg.NormNumGroups = c.Int("norm_num_groups", cfg.NormNumGroups);
        cfg.SampleSize = c.Has("sample_size") && c.Root["sample_size"] is System.Text.Json.Nodes.JsonArray ? c.IntList("sample_size")![0] : c.Int("sample_size", cfg.SampleSize);
        cfg.ScalingFactor = c.Double("scaling_factor", cfg.ScalingFactor);
        cfg.ForceUpcast = c.Bool("force_upcast", cfg.ForceUpcast);
        cfg.MidBlockAddAttention = c.Bool("mid_block_add_attention", true);
        cfg.UseQuantConv = c.Bool("use_quant_conv", true);
        cfg.UsePostQuantConv = c.Bool("use_post_quant_conv", true);
        if (c.Has("latents_mean") || c.Has("latents_std") || c.Has("shift_factor"))
            throw new InvalidInputException($"{c.Source}: latents_mean/latents_std/shift_factor are not supported");
        cfg.Validate();
        return cfg;
    }

    public void Validate()
    {
        foreach (var (key, value) in new[] { ("in_channels", InChannels), ("out_channels", OutChannels), ("latent_channels", LatentChannels),
                     ("layers_per_block", LayersPerBlock), ("norm_num_groups", NormNumGroups), ("sample_size", SampleSize) })
            if (value <= 0) throw new InvalidInputException($"{Source}: '{key}' must be a positive integer, got {value}");
        if (BlockOutChannels.Length == 0 || BlockOutChannels.Any(c => c <= 0))
            throw new InvalidInputException($"{Source}: 'block_out_channels' must be a non-empty list of positive integers, got {ModelSizeEstimate.List(BlockOutChannels)}");
        if (!(ScalingFactor > 0) || !double.IsFinite(ScalingFactor))
            throw new InvalidInputException($"{Source}: 'scaling_factor' must be a positive finite number, got {ScalingFactor}");
        foreach (var t in DownBlockTypes)
            if (!SupportedDownBlocks.Contains(t))
                throw new InvalidInputException($"{Source}: down_block_types contains unsupported block type '{t}'; supported: {string.Join(", ", SupportedDownBlocks)}");
        foreach (var t in UpBlockTypes)
            if (!SupportedUpBlocks.Contains(t))
                throw new InvalidInputException($"{Source}: up_block_types contains unsupported block type '{t}'; supported: {string.Join(", ", SupportedUpBlocks)}");
        if (DownBlockTypes.Length != BlockOutChannels.Length || UpBlockTypes.Length != BlockOutChannels.Length)
            throw new InvalidInputException($"{Source}: {BlockOutChannels.Length} block_out_channels but {DownBlockTypes.Length} down_block_types and {UpBlockTypes.Length} up_block_types");
        foreach (var ch in BlockOutChannels)
            if (ch % NormNumGroups != 0) throw new InvalidInputException($"{Source}: block_out_channels {ch} is not divisible by norm_num_groups {NormNumGroups}");
        ModelSizeEstimate.CheckPlausible(ModelSizeEstimate.Parameters(this), Source, "AutoencoderKL",
            $"block_out_channels {ModelSizeEstimate.List(BlockOutChannels)}, layers_per_block {LayersPerBlock}, latent_channels {LatentChannels}");
    }
}

/// <summary>
/// The VAE posterior: a diagonal Gaussian with the encoder's mean and (clamped) log-variance.
/// </summary>
public sealed record LatentDistribution(Tensor Mean, Tensor LogVar)
{
    /// <summary>exp(0.5 · LogVar).</summary>
    public Tensor Std { get; } = (LogVar * 0.5).exp();

    /// <summary>The mode (= mean), what diffusers' forward(sample_posterior=False) decodes.</summary>
    public Tensor Mode() => Mean;

    /// <summary>Mean + Std · noise, with noise ~ N(0, 1) of the mean's shape supplied by the caller.</summary>
    public Tensor Sample(Tensor noise) => Mean + Std * noise.to(Mean.dtype, Mean.device);

    /// <summary>
    /// Draws the noise like diffusers' randn_tensor: from <paramref name="generator"/> on the CPU when one is given
    /// (so a seed gives the same latents on any device), then moved to the mean's device.
    /// </summary>
    public Tensor Sample(Generator? generator)
    {
        using var noise = generator is null
            ? randn(Mean.shape, Mean.dtype, Mean.device)
            : randn(Mean.shape, Mean.dtype, CPU, generator: generator);
        return Sample(noise);
    }
}

/// <summary>
/// diffusers 0.27 <c>AutoencoderKL</c>: Encode(image in [-1, 1]) → posterior over raw latents; Decode(raw latents) →
/// image. Scaling by scaling_factor is the caller's job. forward(image) reconstructs from the posterior mean.
/// </summary>
public sealed class AutoencoderKL : nn.Module<Tensor, Tensor>
{
    public Encoder encoder;
    public Decoder decoder;
    public Conv2d? quant_conv;
    public Conv2d? post_quant_conv;

    public AutoencoderKLConfig Config { get; }

    /// <summary>Spatial downscale from image to latents: 2^(len(block_out_channels) − 1).</summary>
    public int ScaleFactor => 1 << (Config.BlockOutChannels.Length - 1);

    Action<string, Tensor>? debugHook;

    /// <summary>
    /// Receives (path, output) like PyTorch forward hooks, with the path prefixed "encode." or "decode." by the call
    /// that ran it (e.g. "encode.encoder.down_blocks.0", "decode.post_quant_conv").
    /// </summary>
    public Action<string, Tensor>? DebugHook
    {
        get => debugHook;
        set
        {
            debugHook = value;
            Action<string, Tensor>? Prefixed(string p) => value is null ? null : (n, t) => value(p + n, t);
            OutputHooks.Install(encoder, Prefixed("encode.encoder."));
            OutputHooks.Install(decoder, Prefixed("decode.decoder."));
            encoder.DebugHook = Prefixed("encode.encoder.");
            decoder.DebugHook = Prefixed("decode.decoder.");
        }
    }

    public AutoencoderKL(AutoencoderKLConfig config) : base(nameof(AutoencoderKL))
    {
        config.Validate();
        Config = config;
        encoder = new Encoder(config.InChannels, config.LatentChannels, config.BlockOutChannels, config.LayersPerBlock, config.NormNumGroups, config.MidBlockAddAttention);
        decoder = new Decoder(config.LatentChannels, config.OutChannels, config.BlockOutChannels, config.LayersPerBlock, config.NormNumGroups, config.MidBlockAddAttention);
        if (config.UseQuantConv) quant_conv = nn.Conv2d(2 * config.LatentChannels, 2 * config.LatentChannels, 1);
        if (config.UsePostQuantConv) post_quant_conv = nn.Conv2d(config.LatentChannels, config.LatentChannels, 1);
        RegisterComponents();
    }

    public static AutoencoderKL FromPretrained(string folder)
    {
        var config = AutoencoderKLConfig.FromJson(JsonConfig.Load(Path.Combine(folder, "config.json")));
        var model = new AutoencoderKL(config);
        var path = WeightFiles.Find(folder, "diffusion_pytorch_model");
        var weights = Safetensors.Load(path);
        try
        {
            ConvertDeprecatedAttentionKeys(weights);
            StateDict.LoadStrict(model, weights, path);
        }
        finally { foreach (var t in weights.Values) t.Dispose(); }
        model.eval();
        return model;
    }

    static readonly Regex DeprecatedAttentionKey = new(@"^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Renames the pre-0.14 attention keys (query/key/value/proj_attn → to_q/to_k/to_v/to_out.0) in place, as diffusers
    /// does on load; 1×1-conv-shaped weights [C, C, 1, 1] become Linear weights [C, C].
    /// </summary>
    public static void ConvertDeprecatedAttentionKeys(Dictionary<string, Tensor> weights)
    {
        foreach (var key in weights.Keys.ToList())
        {
            var m = DeprecatedAttentionKey.Match(key);
            if (!m.Success) continue;
            var name = m.Groups[2].Value switch { "query" => "to_q", "key" => "to_k", "value" => "to_v", _ => "to_out.0" };
            var newKey = $"{m.Groups[1].Value}.{name}.{m.Groups[3].Value}";
            if (weights.ContainsKey(newKey)) continue;
            var t = weights[key];
            weights.Remove(key);
            weights[newKey] = t.dim() == 4 && t.shape[2] == 1 && t.shape[3] == 1 ? t.flatten(1) : t;
        }
    }

    /// <param name="image">[B, in_channels, H, W] in [-1, 1]; H and W multiples of <see cref="ScaleFactor"/>.</param>
    public LatentDistribution Encode(Tensor image)
    {
        using var scope = NewDisposeScope();
        var h = encoder.forward(image);
        if (quant_conv is not null)
        {
            h = quant_conv.forward(h);
            debugHook?.Invoke("encode.quant_conv", h);
        }
        var parts = h.chunk(2, 1);
        var posterior = new LatentDistribution(parts[0], parts[1].clamp(-30.0, 20.0));
        posterior.Mean.MoveToOuterDisposeScope();
        posterior.LogVar.MoveToOuterDisposeScope();
        posterior.Std.MoveToOuterDisposeScope();
        return posterior;
    }

    /// <param name="latents">raw latents, NOT multiplied by scaling_factor (divide pipeline latents by it first).</param>
    public Tensor Decode(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var z = latents;
        if (post_quant_conv is not null)
        {
            z = post_quant_conv.forward(z);
            debugHook?.Invoke("decode.post_quant_conv", z);
        }
        return decoder.forward(z).MoveToOuterDisposeScope();
    }

    /// <summary>Reconstruction through the posterior mean (diffusers forward with sample_posterior=False).</summary>
    public override Tensor forward(Tensor image)
    {
        using var scope = NewDisposeScope();
        var posterior = Encode(image);
        return Decode(posterior.Mean).MoveToOuterDisposeScope();
    }
}
