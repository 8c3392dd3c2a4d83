using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>TensorBoard event files (TorchSharp's SummaryWriter) for training runs; scalars and images.</summary>
public sealed class TensorBoardLog : IDisposable
{
    readonly TorchSharp.Modules.SummaryWriter _writer;
    public string Folder { get; }

    public TensorBoardLog(string folder)
    {
        Directory.CreateDirectory(folder);
        Folder = folder;
        _writer = torch.utils.tensorboard.SummaryWriter(folder, createRunName: false);
    }

    public void Scalar(string tag, double value, int step) => _writer.add_scalar(tag, (float)value, step);

    /// <summary>A grid of images [B,3,H,W] in [0,1].</summary>
    public void Images(string tag, Tensor images, int step)
    {
        using var scope = NewDisposeScope();
        long b = images.shape[0], h = images.shape[2], w = images.shape[3];
        int cols = (int)Math.Ceiling(Math.Sqrt(b));
        int rows = (int)Math.Ceiling(b / (double)cols);
        var grid = zeros(3, rows * h, cols * w);
        for (int i = 0; i < b; i++)
            grid[.., TensorIndex.Slice(i / cols * h, (i / cols + 1) * h), TensorIndex.Slice(i % cols * w, (i % cols + 1) * w)] = images[i].detach().cpu().to(float32);
        _writer.add_img(tag, grid.clamp(0, 1), step);
    }

    public void Dispose() { }
}
