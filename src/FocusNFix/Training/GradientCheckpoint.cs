using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace FocusNFix.Training;

/// <summary>
/// Gradient checkpointing (TorchSharp has no torch.utils.checkpoint), in the style of PyTorch's reentrant
/// checkpoint: the forward runs fn without recording a graph, so none of its activations are kept; backward runs
/// fn again with gradients enabled on a detached copy of the input and backpropagates through that fresh graph.
/// <list type="bullet">
/// <item>Parameters that fn closes over (LoRA weights inside a UNet) receive their gradients by accumulation into
/// their <c>.grad</c> during that inner backward, exactly as with plain backprop. So train with
/// <c>loss.backward()</c>; <c>torch.autograd.grad(loss, parameters)</c> cannot see those contributions.</item>
/// <item>The gradient w.r.t. the input is returned through the graph, so checkpointed calls chain (DRaFT-K).</item>
/// <item>fn must be deterministic: no RNG is replayed (no dropout, no fresh noise inside fn; pass noise in by
/// closure as a precomputed tensor), and it must not modify its input in place.</item>
/// <item>Tensors captured by fn that require grad should be leaves (parameters). A captured non-leaf would be
/// backpropagated through by each recompute, which frees its graph; pass such tensors as the input instead.</item>
/// </list>
/// </summary>
public static class GradientCheckpoint
{
    /// <summary>Runs fn(input) without storing activations; on backward, recomputes fn(input) with grad and backprops.</summary>
    public static Tensor Apply(Func<Tensor, Tensor> fn, Tensor input)
    {
        ArgumentNullException.ThrowIfNull(fn);
        ArgumentNullException.ThrowIfNull(input);
        // Nothing will be backpropagated: a plain call keeps no activations anyway.
        if (!is_grad_enabled()) return fn(input);
        // The anchor requires grad so the node always joins the graph, even when the input does not require grad
        // (the first grad step of DRaFT-K starts from latents sampled without grad, yet the LoRA weights inside fn
        // must still get gradients). It receives no gradient itself.
        using var anchor = empty(0, dtype: input.dtype, device: input.device, requires_grad: true);
        return CheckpointFunction.apply(fn, input, anchor);
    }

    // A static singleton (TorchSharp keeps one instance per Function type): all per-call state lives in ctx.
    sealed class CheckpointFunction : SingleTensorFunction<CheckpointFunction>
    {
        const string FnKey = "fn";

        public override string Name => "GradientCheckpoint";

        public override Tensor forward(AutogradContext ctx, params object[] vars)
        {
            var fn = (Func<Tensor, Tensor>)vars[0];
            var input = (Tensor)vars[1];
            ctx.save_data(FnKey, fn);
            ctx.save_for_backward(new List<Tensor> { input });
            // TorchSharp runs forward with grad disabled; the scope frees fn's temporaries right away.
            using var scope = NewDisposeScope();
            var output = fn(input);
            return output.MoveToOuterDisposeScope();
        }

        public override List<Tensor> backward(AutogradContext ctx, Tensor grad_output)
        {
            var fn = (Func<Tensor, Tensor>)ctx.get_data(FnKey);
            var saved = ctx.get_saved_variables()[0];
            Tensor? gradInput = null;
            // The autograd engine may run this on a thread without the caller's dispose scope; own the temporaries.
            using (var scope = NewDisposeScope())
            {
                using (enable_grad())
                {
                    var x = saved.detach().requires_grad_(saved.requires_grad);
                    var output = fn(x);
                    if (output.requires_grad)
                        autograd.backward(new List<Tensor> { output }, new List<Tensor> { grad_output });
                    if (saved.requires_grad) gradInput = x.grad;
                }
                gradInput?.MoveToOuterDisposeScope();
            }
            // One entry per apply() argument: fn (not a tensor), input, anchor (no gradient).
            return new List<Tensor> { null!, gradInput!, null! };
        }
    }
}
