using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// Where, in each generated image, the region a heatmap marks lies: a segmenter (ONNX, TorchScript, the region reward
/// model), the saliency of a reward, masks drawn by hand, boxes saved from a detector. Every heatmap of the library goes
/// through this one interface: the masks M(I0) of training, <c>fnf heatmap</c> and the masks of <c>fnf eval</c>.
/// Whoever creates a source disposes it.
/// </summary>
public interface IHeatmapSource : IDisposable
{
    /// <summary>
    /// <paramref name="images"/>: [B,3,H,W] in [0,1]; <paramref name="keys"/>: one per image, saying which generated image
    /// it is. Sources computed from the pixels ignore the prompt index and seed (text-conditioned ones read the prompt);
    /// stored masks are looked up by them. Returns [B,1,H,W] in [0,1] at the images' resolution, on the images' device
    /// and dtype.
    /// </summary>
    Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys);

    /// <summary>
    /// Moves the source's weights to <paramref name="device"/>, where <see cref="Compute"/> then runs. Sources without
    /// weights of their own (stored masks, boxes) and ONNX Runtime's CPU session have nothing to move: they compute where
    /// they are and hand the map back on the images' device.
    /// </summary>
    void To(Device device);
}
