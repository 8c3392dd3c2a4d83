using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>
/// diffusers <c>ResnetBlock2D</c> (time_embedding_norm "default"): GN → SiLU → conv1 (+ time_emb_proj(SiLU(temb)))
/// → GN → SiLU → conv2, plus the (1×1-projected when channels change) input, divided by output_scale_factor.
/// </summary>
public sealed class ResnetBlock2D : nn.Module<Tensor, Tensor?, Tensor>, IOutputHooked, ICheckpointable
{
    public GroupNorm norm1;
    public Conv2d conv1;
    public Linear? time_emb_proj;
    public GroupNorm norm2;
    public Conv2d conv2;
    public Conv2d? conv_shortcut;
    readonly double outputScaleFactor;

    public Action<Tensor>? OutputHook { get; set; }

    public CheckpointRunner? Checkpoint { get; set; }

    /// <param name="tembChannels">null for the VAE, whose resnets take no time embedding.</param>
    public ResnetBlock2D(int inChannels, int outChannels, int? tembChannels, int groups, double eps, double outputScaleFactor = 1.0)
        : base(nameof(ResnetBlock2D))
    {
        norm1 = Layers.GroupNorm(groups, inChannels, eps);
        conv1 = nn.Conv2d(inChannels, outChannels, 3, stride: 1, padding: 1);
        if (tembChannels is int t) time_emb_proj = nn.Linear(t, outChannels);
        norm2 = Layers.GroupNorm(groups, outChannels, eps);
        conv2 = nn.Conv2d(outChannels, outChannels, 3, stride: 1, padding: 1);
        if (inChannels != outChannels) conv_shortcut = nn.Conv2d(inChannels, outChannels, 1);
        this.outputScaleFactor = outputScaleFactor;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input, Tensor? temb)
    {
        if (!this.Active()) return Compute(input, temb);
        return temb is null ? Checkpoint!((x, _) => Compute(x, null), input) : Checkpoint!((x, c) => Compute(x, c[0]), input, temb);
    }

    Tensor Compute(Tensor input, Tensor? temb)
    {
        using var scope = NewDisposeScope();
        var h = norm1.forward(input).Then(x => nn.functional.silu(x)).Then(conv1.forward);
        if (temb is not null && time_emb_proj is not null)
        {
            var t = time_emb_proj.forward(nn.functional.silu(temb));
            h = h.Then(x => x + t.unsqueeze(-1).unsqueeze(-1));
        }
        h = h.Then(norm2.forward).Then(x => nn.functional.silu(x)).Then(conv2.forward);
        var shortcut = conv_shortcut is null ? input : conv_shortcut.forward(input);
        var output = h.Then(x => shortcut + x);
        if (outputScaleFactor != 1.0) output = output.Then(x => x / outputScaleFactor);
        return OutputHook.Emit(output).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// diffusers <c>Downsample2D</c> with use_conv: a 3×3 stride-2 conv. With padding 0 (the VAE encoder) the input is
/// first padded asymmetrically by one row/column at the bottom/right, as the reference does.
/// </summary>
public sealed class Downsample2D : nn.Module<Tensor, Tensor>
{
    public Conv2d conv;
    readonly int padding;

    public Downsample2D(int channels, int outChannels, int padding) : base(nameof(Downsample2D))
    {
        conv = nn.Conv2d(channels, outChannels, 3, stride: 2, padding: padding);
        this.padding = padding;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (padding == 0)
        {
            using var padded = nn.functional.pad(x, new long[] { 0, 1, 0, 1 }, PaddingModes.Constant, 0);
            return conv.forward(padded);
        }
        return conv.forward(x);
    }
}

/// <summary>diffusers <c>Upsample2D</c> with use_conv: nearest ×2 (or to an explicit size), then a 3×3 conv.</summary>
public sealed class Upsample2D : nn.Module<Tensor, Tensor>
{
    public Conv2d conv;

    public Upsample2D(int channels, int outChannels) : base(nameof(Upsample2D))
    {
        conv = nn.Conv2d(channels, outChannels, 3, stride: 1, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => forward(x, null);

    /// <param name="outputSize">[H, W] when the UNet's input size is not a multiple of its total downscale.</param>
    public Tensor forward(Tensor x, long[]? outputSize)
    {
        using var up = outputSize is null
            ? nn.functional.interpolate(x, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest)
            : nn.functional.interpolate(x, size: outputSize, mode: InterpolationMode.Nearest);
        return conv.forward(up);
    }
}
