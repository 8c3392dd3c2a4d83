using Microsoft.ML.OnnxRuntime;
using TensorElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// Heatmaps from an ONNX segmenter run by ONNX Runtime on the CPU. The model takes one float32 image
/// tensor [B,3,H,W] and returns [B,1,h,w] or [B,h,w]. ONNX Runtime sits outside autograd, so the
/// result carries no gradient: use it for scoring and evaluation, not as a differentiable reward.
/// </summary>
public sealed class OnnxHeatmapSource : IHeatmapSource
{
    readonly InferenceSession _session;
    readonly HeatmapInputRange _range;
    readonly HeatmapOutputKind _kind;

    public string ModelPath { get; }
    public string InputName { get; }
    public string OutputName { get; }

    /// <param name="modelPath">the .onnx file</param>
    /// <param name="inputName">the image input; default the model's first input</param>
    /// <param name="outputName">the heatmap output; default the model's first output</param>
    /// <param name="inputRange">"0,1" (default) or "-1,1": the value range the model expects</param>
    /// <param name="output">"probability" (default) or "logit" (a sigmoid is applied)</param>
    /// <param name="options">ONNX Runtime session options (threads, providers); default ORT's</param>
    public OnnxHeatmapSource(string modelPath, string? inputName = null, string? outputName = null,
        string inputRange = "0,1", string output = "probability", SessionOptions? options = null)
    {
        HeatmapModelIO.RequireFile(modelPath, "ONNX heatmap");
        ModelPath = modelPath;
        _range = HeatmapModelIO.ParseInputRange(inputRange);
        _kind = HeatmapModelIO.ParseOutputKind(output);
        try
        {
            _session = options == null ? new InferenceSession(modelPath) : new InferenceSession(modelPath, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidInputException($"{modelPath}: ONNX Runtime cannot load this model: {e.Message}", e);
        }
        try
        {
            InputName = PickInput(inputName);
            OutputName = Pick(outputName, _session.OutputNames, "output");
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    string PickInput(string? requested)
    {
        var name = Pick(requested, _session.InputNames, "input");
        // Every other input would need a value we cannot invent.
        if (_session.InputNames.Count > 1)
            throw new InvalidInputException(
                $"{ModelPath}: the model has {_session.InputNames.Count} inputs ({string.Join(", ", _session.InputNames)}); " +
                "a heatmap model must take a single image tensor");
        var meta = _session.InputMetadata[name];
        if (!meta.IsTensor || meta.ElementDataType != TensorElementType.Float)
            throw new InvalidInputException(
                $"{ModelPath}: input '{name}' is {(meta.IsTensor ? meta.ElementDataType.ToString() : meta.OnnxValueType.ToString())}; expected a float32 tensor");
        var dims = meta.Dimensions;
        if (dims.Length != 4 || (dims[1] > 0 && dims[1] != 3))
            throw new InvalidInputException(
                $"{ModelPath}: input '{name}' has shape {DescribeDims(meta)}; expected [batch,3,height,width]");
        return name;
    }

    string Pick(string? requested, IReadOnlyList<string> names, string what)
    {
        if (names.Count == 0) throw new InvalidInputException($"{ModelPath}: the model has no {what}s");
        if (requested == null) return names[0];
        if (!names.Contains(requested))
            throw new InvalidInputException(
                $"{ModelPath}: no {what} named '{requested}'; the model's {what}s are: {string.Join(", ", names)}");
        return requested;
    }

    static string DescribeDims(NodeMetadata meta) =>
        "[" + string.Join(",", meta.Dimensions.Select((d, i) =>
            d >= 0 ? d.ToString() : (meta.SymbolicDimensions.Length > i && meta.SymbolicDimensions[i].Length > 0 ? meta.SymbolicDimensions[i] : "?"))) + "]";

    public Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys)
    {
        HeatmapKey.CheckBatch(images, keys, ModelPath);
        long b = images.shape[0], h = images.shape[2], w = images.shape[3];
        float[] data;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var x = HeatmapModelIO.ToModelRange(images.detach().to(float32).cpu(), _range).contiguous();
            data = x.data<float>().ToArray();
        }

        Tensor raw;
        using (var input = OrtValue.CreateTensorValueFromMemory(data, new[] { b, 3, h, w }))
        {
            IDisposableReadOnlyCollection<OrtValue> results;
            try
            {
                using var runOptions = new RunOptions();
                results = _session.Run(runOptions, new[] { InputName }, new[] { input }, new[] { OutputName });
            }
            catch (OnnxRuntimeException e)
            {
                throw new InvalidInputException(
                    $"{ModelPath}: ONNX Runtime failed on input '{InputName}' of shape [{b},3,{h},{w}]: {e.Message}", e);
            }
            using (results)
            {
                var value = results[0];
                if (!value.IsTensor)
                    throw new InvalidInputException($"{ModelPath}: output '{OutputName}' is {value.OnnxType}; expected a float32 tensor");
                var info = value.GetTensorTypeAndShape();
                if (info.ElementDataType != TensorElementType.Float)
                    throw new InvalidInputException(
                        $"{ModelPath}: output '{OutputName}' is {info.ElementDataType}; expected a float32 tensor");
                raw = torch.tensor(value.GetTensorDataAsSpan<float>().ToArray(), info.Shape);
            }
        }

        using (raw)
            return HeatmapModelIO.Finish(raw, b, h, w, _kind, ModelPath, OutputName).To(images);
    }

    /// <summary>Nothing to move: ONNX Runtime runs this session on the CPU; the map comes back on the images' device.</summary>
    public void To(Device device) { }

    public void Dispose() => _session.Dispose();
}
