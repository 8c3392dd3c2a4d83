using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>
/// A module that reports its forward output (the first tensor, as a PyTorch forward hook sees it) to a callback.
/// Used to compare intermediate activations with the reference; null costs nothing.
/// </summary>
public interface IOutputHooked
{
    Action<Tensor>? OutputHook { get; set; }
}

public static class OutputHooks
{
    /// <summary>
    /// Sets <paramref name="hook"/>(state-dict path of the module, output) on every <see cref="IOutputHooked"/>
    /// descendant of <paramref name="root"/>; null removes them. The tensor is only valid during the call:
    /// copy it (detach().clone() and DetachFromDisposeScope()) to keep it.
    /// </summary>
    public static void Install(nn.Module root, Action<string, Tensor>? hook, string prefix = "")
    {
        foreach (var (name, module) in root.named_modules())
        {
            if (module is not IOutputHooked h) continue;
            var full = prefix + name;
            h.OutputHook = hook is null ? null : t => hook(full, t);
        }
    }

    internal static Tensor Emit(this Action<Tensor>? hook, Tensor t)
    {
        hook?.Invoke(t);
        return t;
    }
}
