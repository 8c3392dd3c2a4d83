using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>
/// diffusers <c>BasicTransformerBlock</c> (norm_type "layer_norm", GEGLU feed-forward, no attention bias):
/// x += attn1(LN1 x); x += attn2(LN2 x, context); x += ff(LN3 x).
/// </summary>
public sealed class BasicTransformerBlock : nn.Module<Tensor, Tensor, Tensor>, IOutputHooked
{
    public LayerNorm norm1;
    public Attention attn1;
    public LayerNorm norm2;
    public Attention attn2;
    public LayerNorm norm3;
    public FeedForward ff;

    public Action<Tensor>? OutputHook { get; set; }

    public BasicTransformerBlock(int dim, int heads, int dimHead, int crossAttentionDim, double normEps = 1e-5) : base(nameof(BasicTransformerBlock))
    {
        norm1 = nn.LayerNorm(dim, normEps);
        attn1 = new Attention(dim, null, heads, dimHead);
        norm2 = nn.LayerNorm(dim, normEps);
        attn2 = new Attention(dim, crossAttentionDim, heads, dimHead);
        norm3 = nn.LayerNorm(dim, normEps);
        ff = new FeedForward(dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        // Each residual sum releases the previous one (Layers.Then); the block's input belongs to its caller.
        var h = norm1.forward(x).Then(n => attn1.forward(n, null)).Then(a => a + x);
        h = h.Then(r => norm2.forward(r).Then(n => attn2.forward(n, encoderHiddenStates)).Then(a => a + r));
        h = h.Then(r => norm3.forward(r).Then(ff.forward).Then(f => f + r));
        return OutputHook.Emit(h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// diffusers <c>Transformer2DModel</c> on continuous input: GroupNorm(eps 1e-6) → proj_in (1×1 conv, or Linear after
/// flattening when use_linear_projection) → transformer blocks on [B, HW, C] → proj_out → + residual.
/// </summary>
public sealed class Transformer2DModel : nn.Module<Tensor, Tensor, Tensor>, IOutputHooked, ICheckpointable
{
    public GroupNorm norm;
    public nn.Module<Tensor, Tensor> proj_in;
    public ModuleList<BasicTransformerBlock> transformer_blocks;
    public nn.Module<Tensor, Tensor> proj_out;
    readonly bool useLinearProjection;

    public Action<Tensor>? OutputHook { get; set; }

    public CheckpointRunner? Checkpoint { get; set; }

    public Transformer2DModel(int numHeads, int headDim, int inChannels, int numLayers, int crossAttentionDim, int normNumGroups,
        bool useLinearProjection) : base(nameof(Transformer2DModel))
    {
        int inner = numHeads * headDim;
        norm = Layers.GroupNorm(normNumGroups, inChannels, 1e-6);
        proj_in = useLinearProjection ? nn.Linear(inChannels, inner) : nn.Conv2d(inChannels, inner, 1);
        transformer_blocks = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(_ => new BasicTransformerBlock(inner, numHeads, headDim, crossAttentionDim)).ToArray());
        proj_out = useLinearProjection ? nn.Linear(inner, inChannels) : nn.Conv2d(inner, inChannels, 1);
        this.useLinearProjection = useLinearProjection;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor encoderHiddenStates) =>
        this.Active() ? Checkpoint!((h, c) => Compute(h, c[0]), x, encoderHiddenStates) : Compute(x, encoderHiddenStates);

    Tensor Compute(Tensor x, Tensor encoderHiddenStates)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], height = x.shape[2], width = x.shape[3];
        var h = norm.forward(x);
        if (!useLinearProjection) h = h.Then(proj_in.forward);
        long inner = h.shape[1];
        h = h.Then(t => t.permute(0, 2, 3, 1).reshape(b, height * width, inner));
        if (useLinearProjection) h = h.Then(proj_in.forward);
        foreach (var block in transformer_blocks) h = h.Then(t => block.forward(t, encoderHiddenStates));
        if (useLinearProjection) h = h.Then(proj_out.forward);
        long outer = h.shape[^1];
        h = h.Then(t => t.reshape(b, height, width, outer).permute(0, 3, 1, 2).contiguous());
        if (!useLinearProjection) h = h.Then(proj_out.forward);
        return OutputHook.Emit(h.Then(t => t + x)).MoveToOuterDisposeScope();
    }
}
