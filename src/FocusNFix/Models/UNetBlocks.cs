using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>Settings shared by every block of one UNet (from <see cref="UNet2DConditionConfig"/>).</summary>
public sealed record UNetBlockSettings(int TembChannels, int Groups, double Eps, double ResnetOutScaleFactor, bool UseLinearProjection);

/// <summary>A UNet down block: returns the downsampled hidden state and every skip tensor it produced, in order.</summary>
public abstract class UNetDownBlock : nn.Module, IOutputHooked
{
    protected UNetDownBlock(string name) : base(name) { }

    public Action<Tensor>? OutputHook { get; set; }

    public abstract (Tensor Hidden, Tensor[] Skips) forward(Tensor hidden, Tensor temb, Tensor encoderHiddenStates);

    /// <summary>
    /// The end of every down block: the optional downsampler (its output is a skip too), the debug hook, and the
    /// result moved out of the caller's dispose scope.
    /// </summary>
    protected (Tensor Hidden, Tensor[] Skips) Finish(Tensor hidden, List<Tensor> skips, ModuleList<Downsample2D>? downsamplers)
    {
        if (downsamplers is not null)
        {
            hidden = downsamplers[0].forward(hidden);
            skips.Add(hidden);
        }
        OutputHook.Emit(hidden);
        foreach (var t in skips) t.MoveToOuterDisposeScope();
        return (hidden.MoveToOuterDisposeScope(), skips.ToArray());
    }
}

/// <summary>A UNet up block: consumes as many skips as it has resnets (the last skip first).</summary>
public abstract class UNetUpBlock : nn.Module, IOutputHooked
{
    protected UNetUpBlock(string name) : base(name) { }

    public Action<Tensor>? OutputHook { get; set; }

    public abstract int NumResnets { get; }

    /// <param name="skips">exactly <see cref="NumResnets"/> tensors, oldest first.</param>
    /// <param name="upsampleSize">explicit [H, W] for the upsampler, or null for ×2.</param>
    public abstract Tensor forward(Tensor hidden, Tensor[] skips, Tensor temb, Tensor encoderHiddenStates, long[]? upsampleSize);
}

/// <summary>diffusers <c>DownBlock2D</c>: resnets, then an optional stride-2 conv downsampler.</summary>
public sealed class DownBlock2D : UNetDownBlock
{
    public ModuleList<ResnetBlock2D> resnets;
    public ModuleList<Downsample2D>? downsamplers;

    public DownBlock2D(int inChannels, int outChannels, int numLayers, bool addDownsample, int downsamplePadding, UNetBlockSettings s)
        : base(nameof(DownBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, s.TembChannels, s.Groups, s.Eps, s.ResnetOutScaleFactor)).ToArray());
        if (addDownsample) downsamplers = nn.ModuleList(new Downsample2D(outChannels, outChannels, downsamplePadding));
        RegisterComponents();
    }

    public override (Tensor Hidden, Tensor[] Skips) forward(Tensor hidden, Tensor temb, Tensor encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        var skips = new List<Tensor>();
        foreach (var resnet in resnets)
        {
            hidden = resnet.forward(hidden, temb);
            skips.Add(hidden);
        }
        return Finish(hidden, skips, downsamplers);
    }
}

/// <summary>diffusers <c>CrossAttnDownBlock2D</c>: (resnet, Transformer2DModel) pairs, then an optional downsampler.</summary>
public sealed class CrossAttnDownBlock2D : UNetDownBlock
{
    public ModuleList<Transformer2DModel> attentions;
    public ModuleList<ResnetBlock2D> resnets;
    public ModuleList<Downsample2D>? downsamplers;

    public CrossAttnDownBlock2D(int inChannels, int outChannels, int numLayers, int transformerLayers, int numHeads, int crossAttentionDim,
        bool addDownsample, int downsamplePadding, UNetBlockSettings s) : base(nameof(CrossAttnDownBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, s.TembChannels, s.Groups, s.Eps, s.ResnetOutScaleFactor)).ToArray());
        attentions = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(_ => new Transformer2DModel(numHeads, outChannels / numHeads, outChannels, transformerLayers, crossAttentionDim, s.Groups, s.UseLinearProjection)).ToArray());
        if (addDownsample) downsamplers = nn.ModuleList(new Downsample2D(outChannels, outChannels, downsamplePadding));
        RegisterComponents();
    }

    public override (Tensor Hidden, Tensor[] Skips) forward(Tensor hidden, Tensor temb, Tensor encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        var skips = new List<Tensor>();
        for (int i = 0; i < resnets.Count; i++)
        {
            // The block's input and each skip stay (the caller and the up blocks own them); the resnet's output goes.
            hidden = resnets[i].forward(hidden, temb).Then(r => attentions[i].forward(r, encoderHiddenStates));
            skips.Add(hidden);
        }
        return Finish(hidden, skips, downsamplers);
    }
}

/// <summary>diffusers <c>UNetMidBlock2DCrossAttn</c>: resnet, then (Transformer2DModel, resnet) pairs.</summary>
public sealed class UNetMidBlock2DCrossAttn : nn.Module<Tensor, Tensor, Tensor, Tensor>, IOutputHooked
{
    public ModuleList<Transformer2DModel> attentions;
    public ModuleList<ResnetBlock2D> resnets;

    public Action<Tensor>? OutputHook { get; set; }

    public UNetMidBlock2DCrossAttn(int channels, int transformerLayers, int numHeads, int crossAttentionDim, double outputScaleFactor,
        UNetBlockSettings s, int numLayers = 1) : base(nameof(UNetMidBlock2DCrossAttn))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers + 1)
            .Select(_ => new ResnetBlock2D(channels, channels, s.TembChannels, s.Groups, s.Eps, outputScaleFactor)).ToArray());
        attentions = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(_ => new Transformer2DModel(numHeads, channels / numHeads, channels, transformerLayers, crossAttentionDim, s.Groups, s.UseLinearProjection)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor temb, Tensor encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        var input = hidden;
        hidden = resnets[0].forward(hidden, temb);
        for (int i = 0; i < attentions.Count; i++)
        {
            hidden = hidden.Then(h => attentions[i].forward(h, encoderHiddenStates), keep: input)
                .Then(h => resnets[i + 1].forward(h, temb), keep: input);
        }
        return OutputHook.Emit(hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>UpBlock2D</c>: resnets over cat([h, skip]) (skips popped from the end), then an optional upsampler.</summary>
public sealed class UpBlock2D : UNetUpBlock
{
    public ModuleList<ResnetBlock2D> resnets;
    public ModuleList<Upsample2D>? upsamplers;

    public override int NumResnets => resnets.Count;

    public UpBlock2D(int inChannels, int prevOutputChannels, int outChannels, int numLayers, bool addUpsample, UNetBlockSettings s)
        : base(nameof(UpBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(UpResnetIn(i, numLayers, inChannels, prevOutputChannels, outChannels), outChannels,
                s.TembChannels, s.Groups, s.Eps, s.ResnetOutScaleFactor)).ToArray());
        if (addUpsample) upsamplers = nn.ModuleList(new Upsample2D(outChannels, outChannels));
        RegisterComponents();
    }

    /// <summary>Input width of up-block resnet i: its own input (previous block or previous resnet) plus its skip.</summary>
    internal static int UpResnetIn(int i, int numLayers, int inChannels, int prevOutputChannels, int outChannels)
    {
        int skip = i == numLayers - 1 ? inChannels : outChannels;
        int own = i == 0 ? prevOutputChannels : outChannels;
        return own + skip;
    }

    public override Tensor forward(Tensor hidden, Tensor[] skips, Tensor temb, Tensor encoderHiddenStates, long[]? upsampleSize)
    {
        using var scope = NewDisposeScope();
        var input = hidden;
        for (int i = 0; i < resnets.Count; i++)
        {
            hidden = hidden.Then(h => cat(new[] { h, skips[skips.Length - 1 - i] }, 1), keep: input).Then(h => resnets[i].forward(h, temb));
        }
        if (upsamplers is not null) hidden = hidden.Then(h => upsamplers[0].forward(h, upsampleSize), keep: input);
        return OutputHook.Emit(hidden).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>CrossAttnUpBlock2D</c>: (resnet over cat([h, skip]), Transformer2DModel) pairs, then an optional upsampler.</summary>
public sealed class CrossAttnUpBlock2D : UNetUpBlock
{
    public ModuleList<Transformer2DModel> attentions;
    public ModuleList<ResnetBlock2D> resnets;
    public ModuleList<Upsample2D>? upsamplers;

    public override int NumResnets => resnets.Count;

    public CrossAttnUpBlock2D(int inChannels, int prevOutputChannels, int outChannels, int numLayers, int transformerLayers, int numHeads,
        int crossAttentionDim, bool addUpsample, UNetBlockSettings s) : base(nameof(CrossAttnUpBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(UpBlock2D.UpResnetIn(i, numLayers, inChannels, prevOutputChannels, outChannels), outChannels,
                s.TembChannels, s.Groups, s.Eps, s.ResnetOutScaleFactor)).ToArray());
        attentions = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(_ => new Transformer2DModel(numHeads, outChannels / numHeads, outChannels, transformerLayers, crossAttentionDim, s.Groups, s.UseLinearProjection)).ToArray());
        if (addUpsample) upsamplers = nn.ModuleList(new Upsample2D(outChannels, outChannels));
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor[] skips, Tensor temb, Tensor encoderHiddenStates, long[]? upsampleSize)
    {
        using var scope = NewDisposeScope();
        var input = hidden;
        for (int i = 0; i < resnets.Count; i++)
        {
            hidden = hidden.Then(h => cat(new[] { h, skips[skips.Length - 1 - i] }, 1), keep: input)
                .Then(h => resnets[i].forward(h, temb)).Then(h => attentions[i].forward(h, encoderHiddenStates));
        }
        if (upsamplers is not null) hidden = hidden.Then(h => upsamplers[0].forward(h, upsampleSize), keep: input);
        return OutputHook.Emit(hidden).MoveToOuterDisposeScope();
    }
}
