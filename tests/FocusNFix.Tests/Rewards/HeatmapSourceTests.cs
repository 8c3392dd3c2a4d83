using FocusNFix.Conformance;
using FocusNFix.Rewards;
using TorchSharp;
using Xunit;
using static FocusNFix.Tests.Rewards.OnnxModelWriter;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Rewards;

public class HeatmapSourceTests : IDisposable
{
    const double Atol = 1e-5;
    static IReadOnlyList<HeatmapKey> Keys(Tensor images) => HeatmapKey.Unidentified(images.shape[0]);
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-heat-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    string WriteModel(string name, byte[] bytes) { var p = Path.Combine(_dir, name); File.WriteAllBytes(p, bytes); return p; }

    static Value Image(string name = "image") => new(name, "batch", 3, "height", "width");

    // ReduceMean over channels: a [B,1,H,W] map whose values are easy to predict.
    static Node ChannelMean(string input, string output) =>
        new("ReduceMean", new[] { input }, new[] { output }, Ints: new() { ["axes"] = new[] { 1L } }, Int: new() { ["keepdims"] = 1 });

    static void CheckCase(string caseName)
    {
        var r = HeatmapCase.Run(Golden.Case(caseName));
        Assert.Equal(new[] { "heatmap", "heatmap_rect" }, r.Expected.Keys.OrderBy(k => k));
        foreach (var name in r.Expected.Keys)
        {
            double err = Golden.AssertClose(r.Expected[name], r.Actual[name], Atol, 0, $"{caseName}/{name}");
            Console.WriteLine($"{caseName}/{name}: max abs error {err:E2}");
        }
    }

    [Fact]
    public void OnnxGoldenCaseMatches() => CheckCase("heatmap_onnx_tiny");

    [Fact]
    public void TorchScriptGoldenCaseMatches() => CheckCase("heatmap_torchscript_tiny");

    [Fact]
    public void OnnxDefaultsToTheModelsFirstInputAndOutput()
    {
        using var src = new OnnxHeatmapSource(Path.Combine(Golden.Case("heatmap_onnx_tiny"), "model.onnx"));
        Assert.Equal("image", src.InputName);
        Assert.Equal("heatmap", src.OutputName);
    }

    [Fact]
    public void TorchScriptPassesGradientsToTheImages()
    {
        using var src = new TorchScriptHeatmapSource(Path.Combine(Golden.Case("heatmap_torchscript_tiny"), "model.pt"));
        using var images = Golden.Inputs("heatmap_torchscript_tiny")["image_rect"].requires_grad_(true);
        using var heat = src.Compute(images, Keys(images));
        heat.sum().backward();
        Assert.NotNull(images.grad);
        Assert.True(images.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void OnnxOutputOfTheWrongShapeIsRefusedWithItsShape()
    {
        // Identity hands back the 3-channel image: not a one-channel map.
        var path = WriteModel("identity.onnx", Model(new[] { new Node("Identity", new[] { "image" }, new[] { "mask" }) },
            Image(), new Value("mask", "batch", 3, "height", "width")));
        using var src = new OnnxHeatmapSource(path);
        using var images = rand(2, 3, 8, 12);
        var e = Assert.Throws<InvalidInputException>(() => src.Compute(images, Keys(images)));
        Assert.Contains(path, e.Message);
        Assert.Contains("'mask'", e.Message);
        Assert.Contains("[2,3,8,12]", e.Message);
        Assert.Contains("expected [2,1,h,w] or [2,h,w]", e.Message);
    }

    [Fact]
    public void MissingModelFilesAreNamed()
    {
        var path = Path.Combine(_dir, "nope.onnx");
        var e = Assert.Throws<InvalidInputException>(() => new OnnxHeatmapSource(path));
        Assert.Contains("not found", e.Message);
        Assert.Contains(path, e.Message);
        var pt = Path.Combine(_dir, "nope.pt");
        e = Assert.Throws<InvalidInputException>(() => new TorchScriptHeatmapSource(pt));
        Assert.Contains("not found", e.Message);
        Assert.Contains(pt, e.Message);
        e = Assert.Throws<InvalidInputException>(() => HeatmapCase.Run(_dir));
        Assert.Contains("model.onnx or model.pt", e.Message);
    }

    [Fact]
    public void FilesThatAreNotModelsAreRefused()
    {
        var junk = WriteModel("junk.onnx", new byte[] { 1, 2, 3, 4, 5 });
        Assert.Contains(junk, Assert.Throws<InvalidInputException>(() => new OnnxHeatmapSource(junk)).Message);
        var junkPt = WriteModel("junk.pt", new byte[] { 1, 2, 3, 4, 5 });
        Assert.Contains(junkPt, Assert.Throws<InvalidInputException>(() => new TorchScriptHeatmapSource(junkPt)).Message);
    }

    [Fact]
    public void OnnxNamesAndOptionsAreChecked()
    {
        var path = WriteModel("mean.onnx", Model(new[] { ChannelMean("image", "heat") }, Image(), new Value("heat", "batch", 1, "height", "width")));
        var e = Assert.Throws<InvalidInputException>(() => new OnnxHeatmapSource(path, outputName: "heatmap"));
        Assert.Contains("no output named 'heatmap'", e.Message);
        Assert.Contains("heat", e.Message);
        e = Assert.Throws<InvalidInputException>(() => new OnnxHeatmapSource(path, inputName: "pixels"));
        Assert.Contains("no input named 'pixels'", e.Message);
        Assert.Throws<InvalidInputException>(() => new OnnxHeatmapSource(path, inputRange: "0,255"));
        Assert.Throws<InvalidInputException>(() => new OnnxHeatmapSource(path, output: "mask"));
        using var src = new OnnxHeatmapSource(path);
        using var gray = rand(1, 1, 8, 8);
        Assert.Contains("[1,1,8,8]", Assert.Throws<InvalidInputException>(() => src.Compute(gray, Keys(gray))).Message);
    }

    [Fact]
    public void OnnxInputRangeAndLogitOutputAreApplied()
    {
        var path = WriteModel("mean.onnx", Model(new[] { ChannelMean("image", "heat") }, Image(), new Value("heat", "batch", 1, "height", "width")));
        using var images = rand(2, 3, 5, 7, dtype: float64);
        using (var src = new OnnxHeatmapSource(path))
        using (var heat = src.Compute(images, Keys(images)))
        {
            Assert.Equal(float64, heat.dtype);
            Golden.AssertClose(images.mean(new long[] { 1 }, keepdim: true), heat, 1e-6, 0, "probability");
        }
        using (var src = new OnnxHeatmapSource(path, "image", "heat", inputRange: "-1, 1", output: "logit"))
        using (var heat = src.Compute(images, Keys(images)))
            Golden.AssertClose((images * 2 - 1).mean(new long[] { 1 }, keepdim: true).sigmoid(), heat, 1e-6, 0, "logit");
    }

    [Fact]
    public void OnnxLowResolutionOutputIsResizedBilinearAndClamped()
    {
        // Half-resolution [B,H/2,W/2] output, squeezed to 3-d: it must come back [B,1,H,W].
        var nodes = new[]
        {
            ChannelMean("image", "m"),
            new Node("AveragePool", new[] { "m" }, new[] { "p" }, Ints: new() { ["kernel_shape"] = new[] { 2L, 2 }, ["strides"] = new[] { 2L, 2 } }),
            new Node("Squeeze", new[] { "p", "axes" }, new[] { "heat" }),
        };
        // Squeeze-13 takes its axes as an input: feed it from a Constant node.
        var withAxes = nodes.Prepend(new Node("Constant", Array.Empty<string>(), new[] { "axes" }, Ints: new() { ["value_ints"] = new[] { 1L } }));
        var path = WriteModel("half.onnx", Model(withAxes, Image(), new Value("heat", "batch", "h2", "w2")));
        using var images = rand(2, 3, 8, 12) * 3 - 1; // outside [0,1] so the clamp matters
        using var src = new OnnxHeatmapSource(path);
        using var heat = src.Compute(images, Keys(images));
        using var low = nn.functional.avg_pool2d(images.mean(new long[] { 1 }, keepdim: true), 2, 2);
        using var expected = nn.functional.interpolate(low, new long[] { 8, 12 }, mode: InterpolationMode.Bilinear, align_corners: false).clamp(0, 1);
        Golden.AssertClose(expected, heat, 1e-6, 0, "resized");
    }
}
