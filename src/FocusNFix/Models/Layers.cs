using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>Layer constructors that need more than TorchSharp's defaults.</summary>
public static class Layers
{
    /// <summary>
    /// GroupNorm with weight = 1 and bias = 0. TorchSharp 0.107's nn.GroupNorm leaves them uninitialised
    /// (torch.empty), which gives NaN outputs and irreproducible runs.
    /// </summary>
    public static GroupNorm GroupNorm(int groups, int channels, double eps, bool affine = true)
    {
        var gn = nn.GroupNorm(groups, channels, eps, affine);
        if (affine)
        {
            using var _ = no_grad();
            gn.weight!.fill_(1.0);
            gn.bias!.fill_(0.0);
        }
        return gn;
    }
}
