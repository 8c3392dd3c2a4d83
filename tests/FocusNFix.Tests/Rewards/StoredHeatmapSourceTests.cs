using FocusNFix.IO;
using FocusNFix.Rewards;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Rewards;

/// <summary>Sources that look maps up by image key: mask folders and saved detector boxes.</summary>
public class StoredHeatmapSourceTests : IDisposable
{
    static HeatmapKey[] Keys(params (int Index, long Seed)[] keys) => keys.Select(k => new HeatmapKey("", k.Index, k.Seed)).ToArray();
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-keyed-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    string WriteBoxes(string json)
    {
        var p = Path.Combine(_dir, "boxes.json");
        File.WriteAllText(p, json);
        return p;
    }

    [Fact]
    public void MaskFolderReadsMasksByPromptIndexAndSeed()
    {
        using var a = torch.zeros(8, 8);
        a[TensorIndex.Slice(2, 4), TensorIndex.Slice(1, 5)] = torch.tensor(1f);
        FocusNFix.Masks.HeatmapMask.SavePng(a, Path.Combine(_dir, "0_42.png"));
        using var b = torch.full(4, 4, 0.6f); // half size: resized to the images
        FocusNFix.Masks.HeatmapMask.SavePng(b, Path.Combine(_dir, "3_-7.png"));

        var source = new MaskFolderSource(_dir);
        using var images = torch.rand(2, 3, 8, 8, dtype: float64);
        using var map = source.Compute(images, Keys((0, 42), (3, -7)));
        Assert.Equal(new long[] { 2, 1, 8, 8 }, map.shape);
        Assert.Equal(float64, map.dtype);
        Golden.AssertClose(a.unsqueeze(0), map[0].to(float32), 1e-6, 0, "mask 0_42");
        Assert.True((map[1] - 153.0 / 255).abs().max().item<double>() < 1e-6);

        // An image without a prompt index and seed has no stored mask: refused, not looked up under a made-up name.
        var e = Assert.Throws<InvalidInputException>(() => source.Compute(images, HeatmapKey.Unidentified(2)));
        Assert.Contains("prompt index and seed", e.Message);
    }

    [Fact]
    public void MaskFolderNamesTheMissingFile()
    {
        using var a = torch.zeros(8, 8);
        FocusNFix.Masks.HeatmapMask.SavePng(a, Path.Combine(_dir, "0_42.png"));
        var source = new MaskFolderSource(_dir);
        using var images = torch.rand(2, 3, 8, 8);
        var e = Assert.Throws<InvalidInputException>(() => source.Compute(images, Keys((0, 42), (1, 42))));
        Assert.Contains(_dir, e.Message);
        Assert.Contains("1_42.png", e.Message);
        Assert.Contains("0_42.png", e.Message); // what the folder does have

        e = Assert.Throws<InvalidInputException>(() => source.Compute(images, Keys((0, 42))));
        Assert.Contains("1 image keys (prompt, prompt index, seed) for 2 images", e.Message);
        e = Assert.Throws<InvalidInputException>(() => new MaskFolderSource(Path.Combine(_dir, "nope")));
        Assert.Contains("mask folder not found", e.Message);
    }

    [Fact]
    public void BoxesBecomeMasks()
    {
        var path = WriteBoxes("""
            {
              "0_1": [ { "box": [2, 1, 6, 3], "score": 0.9, "label": "FACE_FEMALE" },
                       { "box": [0, 6, 8, 8], "score": 0.2, "label": "FACE_FEMALE" } ],
              "1_1": [ { "box": [4, 4, 8, 8], "score": 0.8, "label": "BELLY_EXPOSED" } ],
              "2_1": []
            }
            """);
        using var images = torch.rand(3, 3, 8, 8);
        var keys = Keys((0, 1), (1, 1), (2, 1));

        using (var all = new BoxesSource(path).Compute(images, keys))
        {
            Assert.Equal(8 + 16, all[0].sum().item<float>());        // 4x2 box and the 8x2 strip
            Assert.Equal(1f, all[0, 0, 1, 2].item<float>());
            Assert.Equal(0f, all[0, 0, 1, 6].item<float>());         // x1 is exclusive
            Assert.Equal(16f, all[1].sum().item<float>());
            Assert.Equal(0f, all[2].sum().item<float>());
        }
        using (var strong = new BoxesSource(path, minScore: 0.5, weightByScore: true).Compute(images, keys))
        {
            Assert.Equal(8 * 0.9f, strong[0].sum().item<float>(), 4);
            Assert.Equal(16 * 0.8f, strong[1].sum().item<float>(), 4);
        }
        using (var faces = new BoxesSource(path, labels: new[] { "FACE_FEMALE" }).Compute(images, keys))
            Assert.Equal(0f, faces[1].sum().item<float>());
    }

    [Fact]
    public void NudeNetStyleBoxesLoad()
    {
        // NudeNet 3: "class" and [x, y, w, h]; here in fractions of the image size.
        var path = WriteBoxes("""{ "5_9": [ { "class": "BUTTOCKS_EXPOSED", "score": 0.7, "box": [0.25, 0.5, 0.5, 0.25] } ] }""");
        using var images = torch.rand(1, 3, 16, 8);
        using var map = new BoxesSource(path, BoxFormat.Xywh, normalized: true, labels: new[] { "BUTTOCKS_EXPOSED" })
            .Compute(images, Keys((5, 9)));
        // x in [2, 6), y in [8, 12)
        Assert.Equal(16f, map.sum().item<float>());
        Assert.Equal(1f, map[0, 0, 8, 2].item<float>());
        Assert.Equal(0f, map[0, 0, 12, 2].item<float>());
    }

    [Fact]
    public void BoxesFileErrorsAreClear()
    {
        var path = WriteBoxes("""{ "0_1": [] }""");
        using var images = torch.rand(1, 3, 8, 8);
        var e = Assert.Throws<InvalidInputException>(() => new BoxesSource(path).Compute(images, Keys((4, 1))));
        Assert.Contains("\"4_1\"", e.Message);
        Assert.Contains(path, e.Message);

        e = Assert.Throws<InvalidInputException>(() => new BoxesSource(WriteBoxes("""{ "0_1": [ { "box": [1, 2, 3] } ] }""")));
        Assert.Contains("4 numbers", e.Message);
        e = Assert.Throws<InvalidInputException>(() => new BoxesSource(WriteBoxes("""{ "0_1": [ { "box": [5, 5, 1, 1] } ] }""")));
        Assert.Contains("negative width", e.Message);
        e = Assert.Throws<InvalidInputException>(() => new BoxesSource(WriteBoxes("[1, 2]")));
        Assert.Contains("expected an object", e.Message);
        e = Assert.Throws<InvalidInputException>(() => new BoxesSource(WriteBoxes("{ not json")));
        Assert.Contains("not valid JSON", e.Message);
    }
}
