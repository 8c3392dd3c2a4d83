using FocusNFix.Rewards;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Rewards;

/// <summary>A heatmap source made of a function of the images and their keys; counts its calls.</summary>
sealed class FunctionHeatmap(Func<Tensor, IReadOnlyList<HeatmapKey>, Tensor> compute) : IHeatmapSource
{
    public int Calls { get; private set; }
    public List<HeatmapKey> Keys { get; } = new();

    public Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys)
    {
        Calls++;
        Keys.AddRange(keys);
        return compute(images, keys);
    }

    public void To(Device device) { }
    public void Dispose() { }

    /// <summary>Marks the top half of every image.</summary>
    public static FunctionHeatmap TopHalf() => new((images, _) =>
    {
        var h = zeros(images.shape[0], 1, images.shape[2], images.shape[3], device: images.device);
        h[.., .., TensorIndex.Slice(0, images.shape[2] / 2)] = 1;
        return h;
    });

    /// <summary>Marks the left half of every image.</summary>
    public static FunctionHeatmap LeftHalf() => new((images, _) =>
    {
        var h = zeros(images.shape[0], 1, images.shape[2], images.shape[3], device: images.device);
        h[.., .., .., TensorIndex.Slice(0, images.shape[3] / 2)] = 1;
        return h;
    });
}
