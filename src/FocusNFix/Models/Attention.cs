using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>
/// diffusers <c>Attention</c> with the default processor: multi-head softmax(q·kᵀ/√d)·v through
/// scaled_dot_product_attention. Accepts [B, N, C] or [B, C, H, W] input (the VAE mid block), with an optional
/// group_norm before the projections and an optional residual connection (both used by the VAE).
/// </summary>
/// <remarks>
/// The projections are plain <see cref="Linear"/> fields named like the reference (to_q, to_k, to_v, to_out.0), so
/// their state-dict keys match and weights can be merged into them. <see cref="ProjectionDelta"/> is the hook point
/// for adapters (LoRA) that must stay separate and trainable: it receives the projection name ("to_q", "to_k",
/// "to_v", "to_out.0") and the projection's input, and whatever it returns is added to the projection's output.
/// </remarks>
public sealed class Attention : nn.Module<Tensor, Tensor?, Tensor>, IOutputHooked
{
    public GroupNorm? group_norm;
    public Linear to_q;
    public Linear to_k;
    public Linear to_v;
    public ModuleList<Linear> to_out;

    public int Heads { get; }
    public int DimHead { get; }
    readonly bool residualConnection;
    readonly double rescaleOutputFactor;

    /// <summary>Adds an adapter's output to a projection; see the class remarks. Null: plain projections.</summary>
    public Func<string, Tensor, Tensor?>? ProjectionDelta { get; set; }

    public Action<Tensor>? OutputHook { get; set; }

    /// <param name="crossAttentionDim">width of encoder_hidden_states; null for self-attention.</param>
    /// <param name="bias">bias on to_q/to_k/to_v (false in the UNet, true in the VAE).</param>
    /// <param name="normNumGroups">groups of a GroupNorm applied to the input first (VAE); null for none.</param>
    public Attention(int queryDim, int? crossAttentionDim, int heads, int dimHead, bool bias = false, bool outBias = true,
        int? normNumGroups = null, double eps = 1e-5, bool residualConnection = false, double rescaleOutputFactor = 1.0)
        : base(nameof(Attention))
    {
        int inner = heads * dimHead;
        int kvDim = crossAttentionDim ?? queryDim;
        if (normNumGroups is int g) group_norm = Layers.GroupNorm(g, queryDim, eps);
        to_q = nn.Linear(queryDim, inner, hasBias: bias);
        to_k = nn.Linear(kvDim, inner, hasBias: bias);
        to_v = nn.Linear(kvDim, inner, hasBias: bias);
        // The reference's to_out.1 is a Dropout, which has no weights and is the identity here.
        to_out = nn.ModuleList(nn.Linear(inner, queryDim, hasBias: outBias));
        Heads = heads;
        DimHead = dimHead;
        this.residualConnection = residualConnection;
        this.rescaleOutputFactor = rescaleOutputFactor;
        RegisterComponents();
    }

    Tensor Project(string name, Linear layer, Tensor x)
    {
        var y = layer.forward(x);
        var delta = ProjectionDelta?.Invoke(name, x);
        return delta is null ? y : y + delta;
    }

    public override Tensor forward(Tensor hiddenStates, Tensor? encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        var residual = hiddenStates;
        long[] spatial = hiddenStates.shape;
        bool is4d = hiddenStates.dim() == 4;
        var h = is4d ? hiddenStates.flatten(2).transpose(1, 2) : hiddenStates;
        if (group_norm is not null) h = group_norm.forward(h.transpose(1, 2)).transpose(1, 2);
        var context = encoderHiddenStates ?? h;

        long b = h.shape[0];
        var q = Project("to_q", to_q, h);
        var k = Project("to_k", to_k, context);
        var v = Project("to_v", to_v, context);
        long headDim = k.shape[^1] / Heads;
        q = q.view(b, -1, Heads, headDim).transpose(1, 2);
        k = k.view(b, -1, Heads, headDim).transpose(1, 2);
        v = v.view(b, -1, Heads, headDim).transpose(1, 2);
        var o = nn.functional.scaled_dot_product_attention(q, k, v);
        o = o.transpose(1, 2).reshape(b, -1, Heads * headDim).to(q.dtype);
        o = Project("to_out.0", to_out[0], o);
        if (is4d) o = o.transpose(-1, -2).reshape(spatial);
        if (residualConnection) o = o + residual;
        if (rescaleOutputFactor != 1.0) o = o / rescaleOutputFactor;
        return OutputHook.Emit(o).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>GEGLU</c>: proj → chunk(2) → h · gelu(gate) with the exact (erf) GELU.</summary>
public sealed class GEGLU : nn.Module<Tensor, Tensor>
{
    public Linear proj;

    public GEGLU(int dimIn, int dimOut) : base(nameof(GEGLU))
    {
        proj = nn.Linear(dimIn, dimOut * 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var parts = proj.forward(x).chunk(2, -1);
        return (parts[0] * nn.functional.gelu(parts[1])).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>FeedForward</c> with activation "geglu": net.0 = GEGLU(dim, 4·dim), net.2 = Linear(4·dim, dim).</summary>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    // net.1 is a Dropout in the reference: an empty placeholder keeps the indices (net.0, net.2) identical.
    public ModuleList<nn.Module<Tensor, Tensor>> net;

    public FeedForward(int dim, int mult = 4) : base(nameof(FeedForward))
    {
        int inner = dim * mult;
        net = nn.ModuleList<nn.Module<Tensor, Tensor>>(new GEGLU(dim, inner), nn.Identity(), nn.Linear(inner, dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return net[2].forward(net[0].forward(x)).MoveToOuterDisposeScope();
    }
}
