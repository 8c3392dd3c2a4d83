using System.Text.Json;
using FocusNFix.Masks;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Masks;

public class HeatmapMaskTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-mask-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    static MaskOptions NoDilation(Action<MaskOptions>? change = null)
    {
        var o = new MaskOptions { DilatePixels = 0 };
        change?.Invoke(o);
        return o;
    }

    static float[] Values(Tensor t) => t.to(float32).contiguous().data<float>().ToArray();

    static Tensor SinglePixel(int size, int row, int col)
    {
        var m = zeros(1, 1, size, size);
        m[0, 0, row, col] = tensor(1f);
        return m;
    }

    [Fact]
    public void ThresholdAppliesToEachImageNormalisedToUnitRange()
    {
        // Image 0: 0..5 -> 0, .2, .4, .6, .8, 1. Image 1: the same ramp scaled and shifted gives the same mask.
        using var ramp = arange(6, dtype: float32).reshape(1, 1, 2, 3);
        using var heat = cat(new[] { ramp, ramp * 7 + 3 }, 0);
        using var mask = HeatmapMask.FromHeatmap(heat, NoDilation());
        Assert.Equal(new long[] { 2, 1, 2, 3 }, mask.shape);
        Assert.Equal(new float[] { 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1 }, Values(mask));

        using var mask3d = HeatmapMask.FromHeatmap(heat.squeeze(1), NoDilation(o => o.Threshold = 0.7));
        Assert.Equal(new long[] { 2, 1, 2, 3 }, mask3d.shape);
        Assert.Equal(new float[] { 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1 }, Values(mask3d));
    }

    [Fact]
    public void WithoutNormalisationTheThresholdAppliesToRawValues()
    {
        using var heat = tensor(new float[] { 0.1f, 0.2f, 0.3f, 0.4f }).reshape(1, 1, 2, 2);
        using var mask = HeatmapMask.FromHeatmap(heat, NoDilation(o => { o.Normalise = false; o.Threshold = 0.25; }));
        Assert.Equal(new float[] { 0, 0, 1, 1 }, Values(mask));
    }

    [Fact]
    public void ConstantHeatmapGivesAnEmptyMask()
    {
        using var heat = full(1, 1, 4, 4, 0.9f);
        using var mask = HeatmapMask.FromHeatmap(heat, new MaskOptions());
        Assert.Equal(0f, mask.sum().item<float>());
    }

    [Fact]
    public void TopFractionKeepsTheHighestPixels()
    {
        using var heat = randperm(16).to(float32).reshape(1, 1, 4, 4);
        using var mask = HeatmapMask.FromHeatmap(heat, NoDilation(o => o.TopFraction = 0.25));
        Assert.Equal(4f, mask.sum().item<float>());
        using var top = heat.ge(12).to(float32);
        Assert.Equal(Values(top), Values(mask));

        using var none = HeatmapMask.FromHeatmap(heat, NoDilation(o => o.TopFraction = 0));
        Assert.Equal(0f, none.sum().item<float>());
        using var all = HeatmapMask.FromHeatmap(heat, NoDilation(o => o.TopFraction = 1));
        Assert.Equal(16f, all.sum().item<float>());

        // Ties with the last kept value are all kept.
        using var flat = ones(1, 1, 4, 4);
        using var tied = HeatmapMask.FromHeatmap(flat, NoDilation(o => o.TopFraction = 0.25));
        Assert.Equal(16f, tied.sum().item<float>());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void DilationGrowsAPixelToASquare(int r)
    {
        using var m = SinglePixel(11, 5, 5);
        using var d = HeatmapMask.Dilate(m, r);
        Assert.Equal(m.shape, d.shape);
        Assert.Equal((2 * r + 1) * (2 * r + 1), d.sum().item<float>());
        using var square = d[0, 0, (5 - r)..(6 + r), (5 - r)..(6 + r)];
        Assert.True(square.eq(1).all().item<bool>());
    }

    [Fact]
    public void DilationIsClippedAtTheBorderAndZeroRadiusCopies()
    {
        using var m = SinglePixel(8, 0, 0);
        using var d = HeatmapMask.Dilate(m, 2);
        Assert.Equal(9f, d.sum().item<float>());
        using var same = HeatmapMask.Dilate(m, 0);
        Assert.Equal(Values(m), Values(same));
        Assert.Throws<ArgumentOutOfRangeException>(() => HeatmapMask.Dilate(m, -1));
    }

    [Fact]
    public void FromHeatmapDilatesByDefault()
    {
        using var heat = SinglePixel(16, 8, 8) * 3;
        using var mask = HeatmapMask.FromHeatmap(heat, new MaskOptions());  // dilate_pixels = 2
        Assert.Equal(25f, mask.sum().item<float>());
    }

    [Fact]
    public void FeatheringStaysInUnitRangeKeepsTheInsideAndFadesOutside()
    {
        using var m = zeros(1, 1, 21, 21);
        m[0, 0, 8..13, 8..13] = tensor(1f);
        using var f = HeatmapMask.Feather(m, 1.5);
        var v = f[0, 0];
        Assert.True(f.ge(0).all().item<bool>() && f.le(1).all().item<bool>());
        using var inside = f[0, 0, 8..13, 8..13];
        Assert.True(inside.eq(1).all().item<bool>());
        // A soft margin outside, decreasing with distance, and nothing beyond the kernel radius ceil(3 sigma) = 5.
        float d1 = v[10, 13].item<float>(), d2 = v[10, 14].item<float>(), d5 = v[10, 17].item<float>(), d6 = v[10, 18].item<float>();
        Assert.True(d1 > d2 && d2 > d5 && d5 > 0 && d1 < 1, $"{d1} {d2} {d5}");
        Assert.Equal(0f, d6);
        Assert.Equal(d1, v[10, 7].item<float>(), 6);  // symmetric

        using var full1 = ones(1, 1, 9, 9);
        using var stillFull = HeatmapMask.Feather(full1, 2);
        Assert.True(stillFull.eq(1).all().item<bool>());  // replicate padding: no darkening at the border
    }

    [Fact]
    public void FeatheringViaOptionsKeepsTheDilatedSquare()
    {
        using var heat = SinglePixel(16, 8, 8);
        using var mask = HeatmapMask.FromHeatmap(heat, new MaskOptions { DilatePixels = 1, FeatherSigma = 1 });
        Assert.Equal(9, mask.eq(1).sum().item<long>());
        Assert.True(mask.gt(0).sum().item<long>() > 9);
    }

    [Fact]
    public void ResizeToAreaAveragesToALatentGrid()
    {
        using var m = zeros(2, 1, 8, 8);
        m[0, 0, 0..4, 0..4] = tensor(1f);
        m[1, 0, 3, 5] = tensor(1f);
        using var small = HeatmapMask.ResizeTo(m, 2, 2);
        Assert.Equal(new long[] { 2, 1, 2, 2 }, small.shape);
        Assert.Equal(new float[] { 1, 0, 0, 0, 0, 1f / 16, 0, 0 }, Values(small));

        using var one = HeatmapMask.ResizeTo(m, 1, 1);
        Assert.Equal(new float[] { 0.25f, 1f / 64 }, Values(one));
    }

    [Fact]
    public void ResizeToEnlargesByNearest()
    {
        using var m = tensor(new float[] { 1, 0, 0, 0.5f }).reshape(1, 1, 2, 2);
        using var big = HeatmapMask.ResizeTo(m, 4, 4);
        using var expected = m.repeat_interleave(2, 2).repeat_interleave(2, 3);
        Assert.Equal(Values(expected), Values(big));

        using var mixed = HeatmapMask.ResizeTo(m, 1, 4);  // rows averaged, columns doubled
        Assert.Equal(new float[] { 0.5f, 0.5f, 0.25f, 0.25f }, Values(mixed));
    }

    [Fact]
    public void SavePngWritesGreyLevelsAtomically()
    {
        using var m = tensor(new float[] { 0, 1, 0.5f, 2, -1, 0.2f }).reshape(1, 2, 3);
        var path = Path.Combine(_dir, "sub", "mask.png");
        HeatmapMask.SavePng(m, path);
        using var img = Image.Load<L8>(path);
        Assert.Equal((3, 2), (img.Width, img.Height));
        var px = new byte[6];
        img.CopyPixelDataTo(px);
        Assert.Equal(new byte[] { 0, 255, 128, 255, 0, 51 }, px);
        Assert.Single(Directory.GetFiles(Path.Combine(_dir, "sub")));  // no temporary file left behind

        HeatmapMask.SavePng(m.squeeze(0), path);  // [H,W] too, overwriting
        Assert.Throws<ArgumentException>(() => HeatmapMask.SavePng(zeros(2, 2, 3), path));
    }

    [Fact]
    public void OptionsReadFromJsonAndBadValuesAreNamed()
    {
        var o = JsonSerializer.Deserialize<MaskOptions>(
            """{"threshold": 0.3, "top_fraction": 0.1, "normalise": false, "dilate_pixels": 4, "feather_sigma": 1.5}""")!;
        Assert.Equal((0.3, 0.1, false, 4, 1.5), (o.Threshold, o.TopFraction, o.Normalise, o.DilatePixels, o.FeatherSigma));
        var defaults = new MaskOptions();
        Assert.Equal((0.5, null, true, 2, 0.0), (defaults.Threshold, defaults.TopFraction, defaults.Normalise, defaults.DilatePixels, defaults.FeatherSigma));

        using var heat = rand(1, 1, 4, 4);
        var e = Assert.Throws<InvalidInputException>(() => HeatmapMask.FromHeatmap(heat, new MaskOptions { TopFraction = 1.5 }));
        Assert.Contains("top_fraction", e.Message);
        e = Assert.Throws<InvalidInputException>(() => HeatmapMask.FromHeatmap(heat, new MaskOptions { DilatePixels = -1 }));
        Assert.Contains("dilate_pixels", e.Message);
        e = Assert.Throws<InvalidInputException>(() => HeatmapMask.FromHeatmap(heat, new MaskOptions { FeatherSigma = double.NaN }));
        Assert.Contains("feather_sigma", e.Message);

        using var nan = full(1, 1, 2, 2, float.NaN);
        Assert.Contains("NaN", Assert.Throws<InvalidInputException>(() => HeatmapMask.FromHeatmap(nan, new MaskOptions())).Message);
        using var rgb = rand(1, 3, 4, 4);
        Assert.Contains("[1,3,4,4]", Assert.Throws<ArgumentException>(() => HeatmapMask.FromHeatmap(rgb, new MaskOptions())).Message);
    }
}
