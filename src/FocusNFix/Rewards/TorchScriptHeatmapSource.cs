using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// Heatmaps from a TorchScript segmenter (torch.jit.trace / torch.jit.script, then .save()) run by
/// libtorch. The module's forward takes one image tensor [B,3,H,W] and returns one tensor [B,1,h,w]
/// or [B,h,w]. Unlike ONNX, this stays inside autograd: gradients flow back to the images, so it can
/// serve as a differentiable reward. The module's own parameters are frozen.
/// </summary>
public sealed class TorchScriptHeatmapSource : IHeatmapSource
{
    readonly jit.ScriptModule _module;
    readonly HeatmapInputRange _range;
    readonly HeatmapOutputKind _kind;
    readonly ScalarType _dtype;
    Device _device;

    public string ModelPath { get; }

    /// <param name="modelPath">the TorchScript archive (.pt)</param>
    /// <param name="inputRange">"0,1" (default) or "-1,1": the value range the model expects</param>
    /// <param name="output">"probability" (default) or "logit" (a sigmoid is applied)</param>
    /// <param name="device">where to load and run the module; default CPU. Images are moved there and the
    /// heatmap is moved back to the images' device.</param>
    public TorchScriptHeatmapSource(string modelPath, string inputRange = "0,1", string output = "probability",
        Device? device = null)
    {
        HeatmapModelIO.RequireFile(modelPath, "TorchScript heatmap");
        ModelPath = modelPath;
        _range = HeatmapModelIO.ParseInputRange(inputRange);
        _kind = HeatmapModelIO.ParseOutputKind(output);
        _device = device ?? CPU;
        try
        {
            _module = jit.load(modelPath, _device);
        }
        catch (ExternalException e)
        {
            throw new InvalidInputException(
                $"{modelPath}: libtorch {__version__} cannot load this TorchScript archive: {FirstLine(e.Message)}", e);
        }
        _module.eval();
        _dtype = ScalarType.Float32;
        foreach (var p in _module.parameters())
        {
            _dtype = p.dtype;
            p.requires_grad = false;
        }
    }

    // libtorch messages carry a C++ backtrace after the first line.
    static string FirstLine(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? message : lines[0];
    }

    public Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys)
    {
        HeatmapKey.CheckBatch(images, keys, ModelPath);
        long b = images.shape[0], h = images.shape[2], w = images.shape[3];
        using var scope = NewDisposeScope();
        var x = HeatmapModelIO.ToModelRange(images.to(_dtype, _device), _range);
        object result;
        try
        {
            result = _module.forward(x);
        }
        catch (ExternalException e)
        {
            throw new InvalidInputException(
                $"{ModelPath}: the TorchScript module failed on an input of shape [{b},3,{h},{w}]: {FirstLine(e.Message)}", e);
        }
        if (result is not Tensor raw)
            throw new InvalidInputException(
                $"{ModelPath}: forward returned {result?.GetType().Name ?? "nothing"}; expected one tensor [B,1,H,W] or [B,H,W]");
        var heat = HeatmapModelIO.Finish(raw, b, h, w, _kind, ModelPath, "forward");
        return heat.to(images.dtype, images.device).MoveToOuterDisposeScope();
    }

    /// <summary>Moves the module's weights to <paramref name="device"/>; images are moved there and the heatmap back.</summary>
    public void To(Device device)
    {
        _module.to(device);
        _device = device;
    }

    public void Dispose() => _module.Dispose();
}
