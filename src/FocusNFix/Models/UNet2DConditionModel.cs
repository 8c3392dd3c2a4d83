using FocusNFix.IO;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>
/// The parts of a diffusers <c>UNet2DConditionModel</c> config.json that SD1.x/SD2.x-style models use. Per-block
/// values are expanded to one entry per down block (a scalar in the file applies to every block).
/// </summary>
public sealed class UNet2DConditionConfig
{
    public static readonly string[] SupportedDownBlocks = { "CrossAttnDownBlock2D", "DownBlock2D" };
    public static readonly string[] SupportedUpBlocks = { "CrossAttnUpBlock2D", "UpBlock2D" };
    public static readonly string[] SupportedMidBlocks = { "UNetMidBlock2DCrossAttn" };

    public string Source = "(in code)";
    public int InChannels = 4, OutChannels = 4, SampleSize = 64;
    /// <summary>Width of encoder_hidden_states (the first block's when the file gives a list).</summary>
    public int CrossAttentionDim = 768;
    public int[] BlockOutChannels = { 320, 640, 1280, 1280 };
    public string[] DownBlockTypes = { "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D" };
    public string[] UpBlockTypes = { "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D" };
    /// <summary>null: no mid block.</summary>
    public string? MidBlockType = "UNetMidBlock2DCrossAttn";
    /// <summary>Per down block; up block i has LayersPerBlock[reversed i] + 1 resnets.</summary>
    public int[] LayersPerBlock = { 2, 2, 2, 2 };
    /// <summary>Number of attention heads per down block (config "num_attention_heads", else "attention_head_dim").</summary>
    public int[] NumAttentionHeads = { 8, 8, 8, 8 };
    public int[] CrossAttentionDims = { 768, 768, 768, 768 };
    public int[] TransformerLayersPerBlock = { 1, 1, 1, 1 };
    /// <summary>Per up block; null: TransformerLayersPerBlock reversed.</summary>
    public int[]? ReverseTransformerLayersPerBlock;
    public int NormNumGroups = 32;
    public double NormEps = 1e-5;
    public bool FlipSinToCos = true;
    public double FreqShift = 0;
    public bool UseLinearProjection;
    /// <summary>Upcasts q·kᵀ to float32 in the reference; the fused attention here already accumulates in float32.</summary>
    public bool UpcastAttention;
    public bool CenterInputSample;
    public int DownsamplePadding = 1;
    public double MidBlockScaleFactor = 1;
    public double ResnetOutScaleFactor = 1;
    public int ConvInKernel = 3, ConvOutKernel = 3;
    /// <summary>null: 4 × BlockOutChannels[0].</summary>
    public int? TimeEmbeddingDim;

    public int TimeEmbedDim => TimeEmbeddingDim ?? 4 * BlockOutChannels[0];

    /// <summary>Up-block transformer depths (reverse_transformer_layers_per_block, or the down-block list reversed).</summary>
    public int[] UpTransformerLayersPerBlock => ReverseTransformerLayersPerBlock ?? TransformerLayersPerBlock.Reverse().ToArray();

    public static UNet2DConditionConfig FromJson(JsonConfig c)
    {
        var cfg = new UNet2DConditionConfig { Source = c.Source };
        RefuseUnsupported(c);
        cfg.DownBlockTypes = c.StringList("down_block_types") ?? cfg.DownBlockTypes;
        cfg.UpBlockTypes = c.StringList("up_block_types") ?? cfg.UpBlockTypes;
        // An explicit null means "no mid block"; a missing key means the default.
        cfg.MidBlockType = c.Root.ContainsKey("mid_block_type") ? c.String("mid_block_type") : cfg.MidBlockType;
        int n = cfg.DownBlockTypes.Length;
        if (n == 0) throw new InvalidInputException($"{c.Source}: down_block_types is empty (expected at least one block)");
        cfg.BlockOutChannels = c.IntList("block_out_channels") ?? cfg.BlockOutChannels;
        cfg.InChannels = c.Int("in_channels", cfg.InChannels);
        cfg.OutChannels = c.Int("out_channels", cfg.OutChannels);
        cfg.SampleSize = c.Int("sample_size", cfg.SampleSize);
        cfg.LayersPerBlock = PerBlock(c, "layers_per_block", n) ?? Enumerable.Repeat(2, n).ToArray();
        // SD configs store the head COUNT under attention_head_dim (diffusers issue #2011); num_attention_heads wins if set.
        cfg.NumAttentionHeads = PerBlock(c, "num_attention_heads", n) ?? PerBlock(c, "attention_head_dim", n) ?? Enumerable.Repeat(8, n).ToArray();
        cfg.CrossAttentionDims = PerBlock(c, "cross_attention_dim", n) ?? Enumerable.Repeat(1280, n).ToArray();
        cfg.CrossAttentionDim = cfg.CrossAttentionDims[0];
        cfg.TransformerLayersPerBlock = PerBlock(c, "transformer_layers_per_block", n) ?? Enumerable.Repeat(1, n).ToArray();
        cfg.ReverseTransformerLayersPerBlock = PerBlock(c, "reverse_transformer_layers_per_block", n);
        if (c.Root.ContainsKey("norm_num_groups") && !c.Has("norm_num_groups")) throw Unsupported(c, "norm_num_groups", "null");
        cfg.NormNumGroups = c.Int("norm_num_groups", cfg.NormNumGroups);
        cfg.NormEps = c.Double("norm_eps", cfg.NormEps);
        cfg.FlipSinToCos = c.Bool("flip_sin_to_cos", cfg.FlipSinToCos);
        cfg.FreqShift = c.Double("freq_shift", cfg.FreqShift);
        cfg.UseLinearProjection = c.Bool("use_linear_projection", false);
        cfg.UpcastAttention = c.Bool("upcast_attention", false);
        cfg.CenterInputSample = c.Bool("center_input_sample", false);
        cfg.DownsamplePadding = c.Int("downsample_padding", cfg.DownsamplePadding);
        cfg.MidBlockScaleFactor = c.Double("mid_block_scale_factor", 1);
        cfg.ResnetOutScaleFactor = c.Double("resnet_out_scale_factor", 1);
        cfg.ConvInKernel = c.Int("conv_in_kernel", 3);
        cfg.ConvOutKernel = c.Int("conv_out_kernel", 3);
        cfg.TimeEmbeddingDim = c.Has("time_embedding_dim") ? c.Int("time_embedding_dim", 0) : null;
        cfg.Validate();
        return cfg;
    }

    static int[]? PerBlock(JsonConfig c, string key, int n)
    {
        if (!c.Has(key)) return null;
        var list = c.IntList(key, n)!;
        if (list.Length != n)
            throw new InvalidInputException($"{c.Source}: '{key}' has {list.Length} entries but there are {n} down blocks");
        return list;
    }

    static InvalidInputException Unsupported(JsonConfig c, string key, string value) =>
        new($"{c.Source}: '{key}' = {value} is not supported (SD1.x/SD2.x-style UNets only)");

    /// <summary>Options that change the architecture in ways this port does not implement: refuse them instead of ignoring them.</summary>
    static void RefuseUnsupported(JsonConfig c)
    {
        foreach (var key in new[] { "class_embed_type", "addition_embed_type", "encoder_hid_dim", "encoder_hid_dim_type", "time_cond_proj_dim",
                     "num_class_embeds", "time_embedding_act_fn", "timestep_post_act", "cross_attention_norm", "projection_class_embeddings_input_dim" })
            if (c.Has(key)) throw Unsupported(c, key, c.Root[key]!.ToJsonString());
        void Expect(string key, string want)
        {
            var v = c.String(key);
            if (v is not null && v != want) throw Unsupported(c, key, $"\"{v}\"");
        }
        Expect("act_fn", "silu");
        Expect("time_embedding_type", "positional");
        Expect("resnet_time_scale_shift", "default");
        Expect("attention_type", "default");
        foreach (var key in new[] { "dual_cross_attention", "resnet_skip_time_act", "class_embeddings_concat", "mid_block_only_cross_attention" })
            if (c.Has(key) && c.Bool(key, false)) throw Unsupported(c, key, "true");
        if (c.Has("only_cross_attention"))
        {
            bool any = c.Root["only_cross_attention"] is System.Text.Json.Nodes.JsonArray arr
                ? arr.Any(x => x?.GetValue<bool>() == true) : c.Bool("only_cross_attention", false);
            if (any) throw Unsupported(c, "only_cross_attention", "true");
        }
    }

    /// <summary>Checks block types and list lengths; errors name the config file.</summary>
    public void Validate()
    {
        int n = DownBlockTypes.Length;
        if (n == 0) Bad("down_block_types is empty (expected at least one block)");
        CheckSizes();
        for (int i = 0; i < n; i++) CheckType("down_block_types", DownBlockTypes[i], SupportedDownBlocks);
        foreach (var t in UpBlockTypes) CheckType("up_block_types", t, SupportedUpBlocks);
        if (MidBlockType is not null) CheckType("mid_block_type", MidBlockType, SupportedMidBlocks);
        if (UpBlockTypes.Length != n) Bad($"{n} down_block_types but {UpBlockTypes.Length} up_block_types");
        if (BlockOutChannels.Length != n) Bad($"{n} down_block_types but {BlockOutChannels.Length} block_out_channels");
        foreach (var (name, list) in new[] { ("layers_per_block", LayersPerBlock), ("attention heads", NumAttentionHeads),
                     ("cross_attention_dim", CrossAttentionDims), ("transformer_layers_per_block", TransformerLayersPerBlock) })
            if (list.Length != n) Bad($"'{name}' has {list.Length} entries but there are {n} down blocks");
        if (ReverseTransformerLayersPerBlock is { } r && r.Length != n) Bad($"'reverse_transformer_layers_per_block' has {r.Length} entries, expected {n}");
        for (int i = 0; i < n; i++)
            if (BlockOutChannels[i] % NumAttentionHeads[i] != 0 && (DownBlockTypes[i].StartsWith("CrossAttn")))
                Bad($"block_out_channels[{i}] = {BlockOutChannels[i]} is not divisible by {NumAttentionHeads[i]} attention heads");
        foreach (var ch in BlockOutChannels)
            if (ch % NormNumGroups != 0) Bad($"block_out_channels {ch} is not divisible by norm_num_groups {NormNumGroups}");
        if (ConvInKernel % 2 == 0 || ConvOutKernel % 2 == 0) Bad("conv_in_kernel and conv_out_kernel must be odd");
        ModelSizeEstimate.CheckPlausible(ModelSizeEstimate.Parameters(this), Source, "UNet2DConditionModel",
            $"block_out_channels {ModelSizeEstimate.List(BlockOutChannels)}, layers_per_block {ModelSizeEstimate.List(LayersPerBlock)}, " +
            $"transformer_layers_per_block {ModelSizeEstimate.List(TransformerLayersPerBlock)}, cross_attention_dim {ModelSizeEstimate.List(CrossAttentionDims)}, " +
            $"time_embedding_dim {TimeEmbedDim}");
    }

    /// <summary>Zero, negative and non-finite sizes, refused before they reach a division or an allocation.</summary>
    void CheckSizes()
    {
        foreach (var (key, value) in new[] { ("in_channels", InChannels), ("out_channels", OutChannels), ("sample_size", SampleSize),
                     ("norm_num_groups", NormNumGroups), ("conv_in_kernel", ConvInKernel), ("conv_out_kernel", ConvOutKernel) })
            if (value <= 0) Bad($"'{key}' must be a positive integer, got {value}");
        if (TimeEmbeddingDim is <= 0) Bad($"'time_embedding_dim' must be a positive integer, got {TimeEmbeddingDim}");
        if (DownsamplePadding < 0) Bad($"'downsample_padding' must be >= 0, got {DownsamplePadding}");
        foreach (var (key, list) in new[] { ("block_out_channels", BlockOutChannels), ("layers_per_block", LayersPerBlock),
                     ("num_attention_heads (or attention_head_dim)", NumAttentionHeads), ("cross_attention_dim", CrossAttentionDims),
                     ("transformer_layers_per_block", TransformerLayersPerBlock), ("reverse_transformer_layers_per_block", ReverseTransformerLayersPerBlock ?? new[] { 1 }) })
            if (list.Any(v => v <= 0)) Bad($"'{key}' must hold positive integers, got {ModelSizeEstimate.List(list)}");
        if (!(NormEps > 0) || !double.IsFinite(NormEps)) Bad($"'norm_eps' must be a positive finite number, got {NormEps}");
        foreach (var (key, value) in new[] { ("freq_shift", FreqShift), ("mid_block_scale_factor", MidBlockScaleFactor), ("resnet_out_scale_factor", ResnetOutScaleFactor) })
            if (!double.IsFinite(value)) Bad($"'{key}' must be a finite number, got {value}");
    }

    void CheckType(string key, string type, string[] supported)
    {
        if (!supported.Contains(type))
            throw new InvalidInputException($"{Source}: {key} contains unsupported block type '{type}'; supported: {string.Join(", ", supported)}");
    }

    void Bad(string what) => throw new InvalidInputException($"{Source}: {what}");
}

/// <summary>
/// diffusers 0.27 <c>UNet2DConditionModel</c> for SD1.x/SD2.x-style configs: forward(sample, timestep,
/// encoder_hidden_states) → noise prediction. State-dict keys are the reference's.
/// </summary>
public sealed class UNet2DConditionModel : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    public Conv2d conv_in;
    public Timesteps time_proj;
    public TimestepEmbedding time_embedding;
    public ModuleList<UNetDownBlock> down_blocks;
    public UNetMidBlock2DCrossAttn? mid_block;
    public ModuleList<UNetUpBlock> up_blocks;
    public GroupNorm conv_norm_out;
    public Conv2d conv_out;

    public UNet2DConditionConfig Config { get; }
    readonly int numUpsamplers;
    Action<string, Tensor>? debugHook;

    /// <summary>
    /// Receives (module path, output) for conv_in, time_proj, time_embedding, every block, resnet, transformer and
    /// attention, mid_block, conv_norm_out and conv_out, like PyTorch forward hooks. For debugging and conformance checks.
    /// </summary>
    public Action<string, Tensor>? DebugHook
    {
        get => debugHook;
        set { debugHook = value; OutputHooks.Install(this, value); }
    }

    public UNet2DConditionModel(UNet2DConditionConfig config) : base(nameof(UNet2DConditionModel))
    {
        config.Validate();
        Config = config;
        var boc = config.BlockOutChannels;
        int n = boc.Length;
        var s = new UNetBlockSettings(config.TimeEmbedDim, config.NormNumGroups, config.NormEps, config.ResnetOutScaleFactor, config.UseLinearProjection);

        conv_in = nn.Conv2d(config.InChannels, boc[0], config.ConvInKernel, stride: 1, padding: (config.ConvInKernel - 1) / 2);
        time_proj = new Timesteps(boc[0], config.FlipSinToCos, config.FreqShift);
        time_embedding = new TimestepEmbedding(boc[0], config.TimeEmbedDim);

        var downs = new List<UNetDownBlock>();
        int output = boc[0];
        for (int i = 0; i < n; i++)
        {
            int input = output;
            output = boc[i];
            bool final = i == n - 1;
            downs.Add(config.DownBlockTypes[i] switch
            {
                "CrossAttnDownBlock2D" => new CrossAttnDownBlock2D(input, output, config.LayersPerBlock[i], config.TransformerLayersPerBlock[i],
                    config.NumAttentionHeads[i], config.CrossAttentionDims[i], !final, config.DownsamplePadding, s),
                _ => new DownBlock2D(input, output, config.LayersPerBlock[i], !final, config.DownsamplePadding, s),
            });
        }
        down_blocks = nn.ModuleList(downs.ToArray());

        if (config.MidBlockType is not null)
            mid_block = new UNetMidBlock2DCrossAttn(boc[^1], config.TransformerLayersPerBlock[^1], config.NumAttentionHeads[^1],
                config.CrossAttentionDims[^1], config.MidBlockScaleFactor, s);

        var rBoc = boc.Reverse().ToArray();
        var rHeads = config.NumAttentionHeads.Reverse().ToArray();
        var rLayers = config.LayersPerBlock.Reverse().ToArray();
        var rCross = config.CrossAttentionDims.Reverse().ToArray();
        var rTransformer = config.UpTransformerLayersPerBlock;
        var ups = new List<UNetUpBlock>();
        output = rBoc[0];
        for (int i = 0; i < n; i++)
        {
            bool final = i == n - 1;
            int prevOutput = output;
            output = rBoc[i];
            int input = rBoc[Math.Min(i + 1, n - 1)];
            if (!final) numUpsamplers++;
            ups.Add(config.UpBlockTypes[i] switch
            {
                "CrossAttnUpBlock2D" => new CrossAttnUpBlock2D(input, prevOutput, output, rLayers[i] + 1, rTransformer[i], rHeads[i], rCross[i], !final, s),
                _ => new UpBlock2D(input, prevOutput, output, rLayers[i] + 1, !final, s),
            });
        }
        up_blocks = nn.ModuleList(ups.ToArray());

        conv_norm_out = Layers.GroupNorm(config.NormNumGroups, boc[0], config.NormEps);
        conv_out = nn.Conv2d(boc[0], config.OutChannels, config.ConvOutKernel, stride: 1, padding: (config.ConvOutKernel - 1) / 2);
        RegisterComponents();
    }

    /// <summary>Reads config.json and diffusion_pytorch_model.safetensors from a diffusers component folder; loading is strict.</summary>
    public static UNet2DConditionModel FromPretrained(string folder)
    {
        var config = UNet2DConditionConfig.FromJson(JsonConfig.Load(Path.Combine(folder, "config.json")));
        var model = new UNet2DConditionModel(config);
        StateDict.LoadFile(model, WeightFiles.Find(folder, "diffusion_pytorch_model"));
        model.eval();
        return model;
    }

    Tensor Hook(string name, Tensor t)
    {
        debugHook?.Invoke(name, t);
        return t;
    }

    /// <param name="sample">[B, in_channels, H, W] noisy sample (latents, or pixels for a pixel-space model).</param>
    /// <param name="timestep">0-d (broadcast to the batch), [1] or [B]; integer or floating point.</param>
    /// <param name="encoderHiddenStates">[B, L, cross_attention_dim] text embeddings; L can be anything.</param>
    public override Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates)
    {
        long batch = sample.shape[0];
        if (timestep.dim() > 1 || (timestep.dim() == 1 && timestep.shape[0] != batch && timestep.shape[0] != 1))
            throw new InvalidInputException($"UNet timestep has shape [{string.Join(", ", timestep.shape)}]; expected a scalar, [1] or [{batch}] for a batch of {batch}");
        if (encoderHiddenStates.dim() != 3 || encoderHiddenStates.shape[0] != batch || encoderHiddenStates.shape[2] != Config.CrossAttentionDim)
            throw new InvalidInputException($"UNet encoder_hidden_states has shape [{string.Join(", ", encoderHiddenStates.shape)}]; expected [{batch}, L, {Config.CrossAttentionDim}]");

        using var scope = NewDisposeScope();
        // Any spatial size works; when it is not a multiple of the total downscale, upsamplers must match the skips' sizes.
        long factor = 1L << numUpsamplers;
        bool forwardUpsampleSize = sample.shape[^2] % factor != 0 || sample.shape[^1] % factor != 0;

        if (Config.CenterInputSample) sample = 2 * sample - 1.0;

        var t = timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep;
        t = t.to(sample.device).expand(batch);
        var tEmb = time_proj.forward(t).to(sample.dtype);
        Hook("time_proj", tEmb);
        var emb = Hook("time_embedding", time_embedding.forward(tEmb));

        var h = Hook("conv_in", conv_in.forward(sample));
        var skips = new List<Tensor> { h };
        foreach (var block in down_blocks)
        {
            var (hidden, res) = block.forward(h, emb, encoderHiddenStates);
            h = hidden;
            skips.AddRange(res);
        }

        if (mid_block is not null) h = mid_block.forward(h, emb, encoderHiddenStates);

        for (int i = 0; i < up_blocks.Count; i++)
        {
            var block = up_blocks[i];
            bool final = i == up_blocks.Count - 1;
            int k = block.NumResnets;
            var res = skips.GetRange(skips.Count - k, k).ToArray();
            skips.RemoveRange(skips.Count - k, k);
            long[]? upsampleSize = !final && forwardUpsampleSize ? skips[^1].shape[2..] : null;
            h = block.forward(h, res, emb, encoderHiddenStates, upsampleSize);
        }

        h = Hook("conv_norm_out", conv_norm_out.forward(h));
        h = Hook("conv_out", conv_out.forward(nn.functional.silu(h)));
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>forward with a timestep given as a number (integer-valued for DDIM/DDPM, fractional for Euler).</summary>
    public Tensor forward(Tensor sample, double timestep, Tensor encoderHiddenStates)
    {
        using var t = timestep == Math.Floor(timestep) && Math.Abs(timestep) < 1e15
            ? tensor((long)timestep, device: sample.device)
            : tensor(timestep, ScalarType.Float64, device: sample.device);
        return forward(sample, t, encoderHiddenStates);
    }
}
