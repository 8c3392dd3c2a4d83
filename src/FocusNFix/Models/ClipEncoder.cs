using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>transformers' ACT2FN entries that CLIP-family configs use, by their config name.</summary>
public static class ClipActivation
{
    public static readonly string[] Supported =
        { "quick_gelu", "gelu", "gelu_python", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_accurate", "relu", "silu", "swish", "tanh", "sigmoid", "linear" };

    /// <summary>The activation for <paramref name="name"/>; an unknown name is an error naming <paramref name="source"/>.</summary>
    public static Func<Tensor, Tensor> Get(string name, string source = "config") => name switch
    {
        // OpenAI CLIP's approximation (SD1.x): x * sigmoid(1.702 x).
        "quick_gelu" => x => x * torch.sigmoid(x * 1.702),
        // OpenCLIP (SD2) uses the exact erf form.
        "gelu" or "gelu_python" => x => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_accurate" => TanhGelu,
        "gelu_fast" => x => 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
        "relu" => x => nn.functional.relu(x),
        "silu" or "swish" => x => nn.functional.silu(x),
        "tanh" => x => torch.tanh(x),
        "sigmoid" => x => torch.sigmoid(x),
        "linear" => x => x.alias(),
        _ => throw new InvalidInputException($"{source}: hidden_act '{name}' is not supported (expected one of {string.Join(", ", Supported)})"),
    };

    static Tensor TanhGelu(Tensor x) =>
        0.5 * x * (1.0 + torch.tanh(Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * torch.pow(x, 3.0))));
}

/// <summary>
/// CLIPAttention: multi-head self-attention with biased q/k/v/out projections. q is scaled by
/// head_dim^-0.5 before the product, and the causal and padding masks are added in that order
/// with finfo(dtype).min, as transformers does, so fully masked rows behave identically.
/// </summary>
public sealed class ClipAttention : nn.Module
{
    private readonly Linear k_proj, v_proj, q_proj, out_proj;
    readonly int _heads, _headDim;
    readonly double _scale;

    public ClipAttention(int hiddenSize, int heads) : base(nameof(ClipAttention))
    {
        _heads = heads;
        _headDim = hiddenSize / heads;
        _scale = Math.Pow(_headDim, -0.5);
        k_proj = nn.Linear(hiddenSize, hiddenSize);
        v_proj = nn.Linear(hiddenSize, hiddenSize);
        q_proj = nn.Linear(hiddenSize, hiddenSize);
        out_proj = nn.Linear(hiddenSize, hiddenSize);
        RegisterComponents();
    }

    /// <param name="x">[B, T, C]</param>
    /// <param name="causalMask">additive [1|B, 1, T, T] or null</param>
    /// <param name="paddingMask">additive [B, 1, 1|T, T] or null</param>
    public Tensor Forward(Tensor x, Tensor? causalMask, Tensor? paddingMask)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        var q = (q_proj.forward(x) * _scale).view(b, t, _heads, _headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        var w = torch.matmul(q, k.transpose(-1, -2));
        if (causalMask is not null) w = w + causalMask;
        if (paddingMask is not null) w = w + paddingMask;
        w = torch.softmax(w, -1);
        var o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, _heads * _headDim);
        return out_proj.forward(o).MoveToOuterDisposeScope();
    }
}

/// <summary>CLIPMLP: fc1, activation, fc2.</summary>
public sealed class ClipMlp : nn.Module
{
    private readonly Linear fc1, fc2;
    readonly Func<Tensor, Tensor> _act;

    public ClipMlp(int hiddenSize, int intermediateSize, string hiddenAct) : base(nameof(ClipMlp))
    {
        _act = ClipActivation.Get(hiddenAct);
        fc1 = nn.Linear(hiddenSize, intermediateSize);
        fc2 = nn.Linear(intermediateSize, hiddenSize);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return fc2.forward(_act(fc1.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>CLIPEncoderLayer, pre-LN: x += attn(LN1 x); x += MLP(LN2 x).</summary>
public sealed class ClipEncoderLayer : nn.Module
{
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly ClipMlp mlp;
    private readonly LayerNorm layer_norm2;

    public ClipEncoderLayer(IClipEncoderConfig c) : base(nameof(ClipEncoderLayer))
    {
        self_attn = new ClipAttention(c.HiddenSize, c.NumAttentionHeads);
        layer_norm1 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        mlp = new ClipMlp(c.HiddenSize, c.IntermediateSize, c.HiddenAct);
        layer_norm2 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? causalMask, Tensor? paddingMask)
    {
        using var scope = torch.NewDisposeScope();
        var h = x + self_attn.Forward(layer_norm1.forward(x), causalMask, paddingMask);
        h = h + mlp.Forward(layer_norm2.forward(h));
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>CLIPEncoder: the stack of layers (state-dict prefix <c>layers.{i}</c>).</summary>
public sealed class ClipEncoder : nn.Module
{
    private readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(IClipEncoderConfig c) : base(nameof(ClipEncoder))
    {
        layers = new ModuleList<ClipEncoderLayer>();
        for (int i = 0; i < c.NumHiddenLayers; i++) layers.Add(new ClipEncoderLayer(c));
        RegisterComponents();
    }

    public int NumLayers => layers.Count;

    /// <summary>
    /// Runs the first <paramref name="numLayers"/> layers (all when null). When <paramref name="hiddenStates"/>
    /// is given it receives the input and every layer's output, like transformers' output_hidden_states.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor? causalMask = null, Tensor? paddingMask = null, int? numLayers = null, List<Tensor>? hiddenStates = null)
    {
        int n = numLayers ?? layers.Count;
        hiddenStates?.Add(x);
        var h = x;
        for (int i = 0; i < n; i++)
        {
            var next = layers[i].Forward(h, causalMask, paddingMask);
            // Intermediate activations not handed back are freed at once; autograd keeps what it needs.
            if (hiddenStates is null && !ReferenceEquals(h, x)) h.Dispose();
            h = next;
            hiddenStates?.Add(h);
        }
        return h;
    }
}

/// <summary>The additive masks of CLIP's text transformer.</summary>
public static class ClipMasks
{
    /// <summary>[1, 1, T, T]: 0 on and below the diagonal, finfo(dtype).min above (_create_4d_causal_attention_mask).</summary>
    public static Tensor Causal(long length, ScalarType dtype, Device device)
    {
        double min = torch.finfo(dtype).min;
        using var full = torch.full(length, length, min, dtype: dtype, device: device);
        return full.triu(1).view(1, 1, length, length);
    }

    /// <summary>
    /// [B, 1, 1, T] from a [B, T] keep-mask (1 = attend): 0 where kept, finfo(dtype).min elsewhere
    /// (_prepare_4d_attention_mask; it broadcasts over queries like the expanded original).
    /// </summary>
    public static Tensor Padding(Tensor attentionMask, ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var inverted = 1.0 - attentionMask.to(dtype);
        var result = inverted.masked_fill(inverted.ne(0), torch.finfo(dtype).min);
        return result.unsqueeze(1).unsqueeze(1).MoveToOuterDisposeScope();
    }
}
