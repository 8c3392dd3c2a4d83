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

    /// <summary>
    /// <paramref name="f"/> applied to <paramref name="x"/>, releasing <paramref name="x"/> at once unless it is
    /// <paramref name="keep"/> (a block's own input, which its caller owns). Inside one dispose scope every
    /// intermediate would otherwise live until the scope ends: seven full-size tensors per resnet where PyTorch's
    /// reference counting holds about three, 1 GB more at the VAE decoder's 512 px blocks (fnf bench --preset sd15,
    /// vae_decode_no_grad). Autograd keeps its own reference to whatever backward needs, so this is safe under grad.
    /// </summary>
    public static Tensor Then(this Tensor x, Func<Tensor, Tensor> f, Tensor? keep = null)
    {
        var y = f(x);
        if (!ReferenceEquals(x, keep) && !ReferenceEquals(x, y)) x.Dispose();
        return y;
    }
}

