using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>diffusers <c>DownEncoderBlock2D</c>: resnets without time embedding, then an optional padding-0 downsampler.</summary>
public sealed class DownEncoderBlock2D : nn.Module<Tensor, Tensor>, IOutputHooked
{
    public ModuleList<ResnetBlock2D> resnets;
    public ModuleList<Downsample2D>? downsamplers;

    public Action<Tensor>? OutputHook { get; set; }

    public DownEncoderBlock2D(int inChannels, int outChannels, int numLayers, bool addDownsample, int groups, double eps, int downsamplePadding = 0)
        : base(nameof(DownEncoderBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, null, groups, eps)).ToArray());
        if (addDownsample) downsamplers = nn.ModuleList(new Downsample2D(outChannels, outChannels, downsamplePadding));
        RegisterComponents();
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        var input = h;
        foreach (var resnet in resnets) h = h.Then(x => resnet.forward(x, null), keep: input);
        if (downsamplers is not null) h = h.Then(downsamplers[0].forward, keep: input);
        return OutputHook.Emit(h).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>UpDecoderBlock2D</c>: resnets without time embedding, then an optional upsampler.</summary>
public sealed class UpDecoderBlock2D : nn.Module<Tensor, Tensor>, IOutputHooked
{
    public ModuleList<ResnetBlock2D> resnets;
    public ModuleList<Upsample2D>? upsamplers;

    public Action<Tensor>? OutputHook { get; set; }

    public UpDecoderBlock2D(int inChannels, int outChannels, int numLayers, bool addUpsample, int groups, double eps) : base(nameof(UpDecoderBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, null, groups, eps)).ToArray());
        if (addUpsample) upsamplers = nn.ModuleList(new Upsample2D(outChannels, outChannels));
        RegisterComponents();
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        var input = h;
        foreach (var resnet in resnets) h = h.Then(x => resnet.forward(x, null), keep: input);
        if (upsamplers is not null) h = h.Then(upsamplers[0].forward, keep: input);
        return OutputHook.Emit(h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// diffusers <c>UNetMidBlock2D</c> as the VAE uses it: resnet, then (single-head attention with group_norm, q/k/v bias
/// and a residual connection, resnet) pairs; no time embedding.
/// </summary>
public sealed class UNetMidBlock2D : nn.Module<Tensor, Tensor>, IOutputHooked
{
    public ModuleList<Attention>? attentions;
    public ModuleList<ResnetBlock2D> resnets;

    public Action<Tensor>? OutputHook { get; set; }

    public UNetMidBlock2D(int channels, int groups, double eps, bool addAttention = true, int numLayers = 1) : base(nameof(UNetMidBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers + 1).Select(_ => new ResnetBlock2D(channels, channels, null, groups, eps)).ToArray());
        if (addAttention)
            attentions = nn.ModuleList(Enumerable.Range(0, numLayers)
                .Select(_ => new Attention(channels, null, 1, channels, bias: true, normNumGroups: groups, eps: eps, residualConnection: true)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        h = resnets[0].forward(h, null);
        for (int i = 1; i < resnets.Count; i++)
        {
            if (attentions is not null) h = attentions[i - 1].forward(h, null);
            h = resnets[i].forward(h, null);
        }
        return OutputHook.Emit(h).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>Encoder</c> (VAE): conv_in → down blocks → mid block → GN → SiLU → conv_out (2·latent channels).</summary>
public sealed class Encoder : nn.Module<Tensor, Tensor>, IOutputHooked
{
    public Conv2d conv_in;
    public ModuleList<DownEncoderBlock2D> down_blocks;
    public UNetMidBlock2D mid_block;
    public GroupNorm conv_norm_out;
    public Conv2d conv_out;

    public Action<Tensor>? OutputHook { get; set; }
    internal Action<string, Tensor>? DebugHook;

    public Encoder(int inChannels, int outChannels, int[] blockOutChannels, int layersPerBlock, int groups, bool midBlockAddAttention, bool doubleZ = true)
        : base(nameof(Encoder))
    {
        const double eps = 1e-6;
        conv_in = nn.Conv2d(inChannels, blockOutChannels[0], 3, stride: 1, padding: 1);
        int output = blockOutChannels[0];
        var blocks = new List<DownEncoderBlock2D>();
        for (int i = 0; i < blockOutChannels.Length; i++)
        {
            int input = output;
            output = blockOutChannels[i];
            blocks.Add(new DownEncoderBlock2D(input, output, layersPerBlock, i != blockOutChannels.Length - 1, groups, eps));
        }
        down_blocks = nn.ModuleList(blocks.ToArray());
        mid_block = new UNetMidBlock2D(blockOutChannels[^1], groups, eps, midBlockAddAttention);
        conv_norm_out = Layers.GroupNorm(groups, blockOutChannels[^1], eps);
        conv_out = nn.Conv2d(blockOutChannels[^1], doubleZ ? 2 * outChannels : outChannels, 3, stride: 1, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = conv_in.forward(x);
        DebugHook?.Invoke("conv_in", h);
        foreach (var block in down_blocks) h = h.Then(block.forward);
        h = h.Then(mid_block.forward);
        h = h.Then(conv_norm_out.forward).Then(x => nn.functional.silu(x)).Then(conv_out.forward);
        DebugHook?.Invoke("conv_out", h);
        return OutputHook.Emit(h).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>Decoder</c> (VAE): conv_in → mid block → up blocks (layers_per_block + 1 resnets each) → GN → SiLU → conv_out.</summary>
public sealed class Decoder : nn.Module<Tensor, Tensor>, IOutputHooked
{
    public Conv2d conv_in;
    public UNetMidBlock2D mid_block;
    public ModuleList<UpDecoderBlock2D> up_blocks;
    public GroupNorm conv_norm_out;
    public Conv2d conv_out;

    public Action<Tensor>? OutputHook { get; set; }
    internal Action<string, Tensor>? DebugHook;

    public Decoder(int inChannels, int outChannels, int[] blockOutChannels, int layersPerBlock, int groups, bool midBlockAddAttention)
        : base(nameof(Decoder))
    {
        const double eps = 1e-6;
        conv_in = nn.Conv2d(inChannels, blockOutChannels[^1], 3, stride: 1, padding: 1);
        mid_block = new UNetMidBlock2D(blockOutChannels[^1], groups, eps, midBlockAddAttention);
        var reversed = blockOutChannels.Reverse().ToArray();
        int output = reversed[0];
        var blocks = new List<UpDecoderBlock2D>();
        for (int i = 0; i < reversed.Length; i++)
        {
            int prev = output;
            output = reversed[i];
            blocks.Add(new UpDecoderBlock2D(prev, output, layersPerBlock + 1, i != reversed.Length - 1, groups, eps));
        }
        up_blocks = nn.ModuleList(blocks.ToArray());
        conv_norm_out = Layers.GroupNorm(groups, blockOutChannels[0], eps);
        conv_out = nn.Conv2d(blockOutChannels[0], outChannels, 3, stride: 1, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor z)
    {
        using var scope = NewDisposeScope();
        var h = conv_in.forward(z);
        DebugHook?.Invoke("conv_in", h);
        h = h.Then(mid_block.forward);
        foreach (var block in up_blocks) h = h.Then(block.forward);
        h = h.Then(conv_norm_out.forward).Then(x => nn.functional.silu(x)).Then(conv_out.forward);
        DebugHook?.Invoke("conv_out", h);
        return OutputHook.Emit(h).MoveToOuterDisposeScope();
    }
}
