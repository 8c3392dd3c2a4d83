using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Lora;

/// <summary>
/// The low-rank pair of one adapted projection: delta(x) = factor · (x · Aᵀ) · Bᵀ with A = lora_A [r, in] and
/// B = lora_B [out, r] (PEFT's names and layouts; "down"/"up" in the other conventions).
/// </summary>
public sealed class LoraAdapter : nn.Module
{
    public Parameter lora_A;
    public Parameter lora_B;

    /// <summary>Module path of the adapted Linear in the UNet, e.g. "mid_block.attentions.0.transformer_blocks.0.attn2.to_k".</summary>
    public string ModulePath { get; }
    public double Alpha { get; }
    public int Rank => (int)lora_A.shape[0];
    internal Linear Target { get; }

    internal LoraAdapter(string modulePath, Linear target, Tensor a, Tensor b, double alpha) : base(nameof(LoraAdapter))
    {
        ModulePath = modulePath;
        Target = target;
        Alpha = alpha;
        lora_A = new Parameter(a, requires_grad: true);
        lora_B = new Parameter(b, requires_grad: true);
        register_parameter(nameof(lora_A), lora_A);
        register_parameter(nameof(lora_B), lora_B);
    }

    // The reflective default would adopt the UNet's Linear (Target) as a child, and dispose it with the adapter.
    protected override void RegisterComponents() { }

    /// <summary>scale · (alpha / r) · (x · Aᵀ) · Bᵀ, in x's dtype, differentiable in A and B.</summary>
    public Tensor Delta(Tensor x, double scale)
    {
        if (lora_A.device_type != x.device_type || lora_A.device_index != x.device_index)
            throw new InvalidOperationException($"LoRA '{ModulePath}': parameters are on {lora_A.device} but the input is on {x.device}; move the LoRA network with .to(device) after moving the UNet");
        using var scope = NewDisposeScope();
        var a = lora_A.dtype == x.dtype ? lora_A : lora_A.to(x.dtype);
        var b = lora_B.dtype == x.dtype ? lora_B : lora_B.to(x.dtype);
        var d = nn.functional.linear(nn.functional.linear(x, a), b).mul(scale * Alpha / Rank);
        return d.MoveToOuterDisposeScope();
    }

    /// <summary>A snapshot of the weights (detached views, same storage) in the file form.</summary>
    public LoraLayer ToLayer() => new(ModulePath, lora_A.detach(), lora_B.detach(), Alpha);
}
