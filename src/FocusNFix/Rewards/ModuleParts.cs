using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// Reaches submodules and parameters of the ported models by their state-dict names. The CLIP classes keep
/// their projections private; the rewards need them to rebuild a forward that also returns hidden states.
/// The names are the checkpoint keys, so they cannot drift without breaking loading.
/// </summary>
static class ModuleParts
{
    public static T Child<T>(nn.Module module, string name) where T : nn.Module
    {
        foreach (var (n, m) in module.named_children())
            if (n == name && m is T t) return t;
        throw new InvalidOperationException($"{module.GetType().Name} has no submodule '{name}' of type {typeof(T).Name}");
    }

    public static Tensor Parameter(nn.Module module, string name)
    {
        foreach (var (n, p) in module.named_parameters(recurse: false))
            if (n == name) return p;
        throw new InvalidOperationException($"{module.GetType().Name} has no parameter '{name}'");
    }
}
