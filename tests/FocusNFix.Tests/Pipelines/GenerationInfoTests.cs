using FocusNFix.IO;
using FocusNFix.Pipelines;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Pipelines;

public class GenerationInfoTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-geninfo-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    static GenerationInfo Example() => new()
    {
        Prompt = "a red circle, in the top left", NegativePrompt = "blurry", PromptIndex = 3, Seed = 1234567890123, Steps = 30,
        GuidanceScale = 7.25, Scheduler = "euler-a", SchedulerClass = "EulerAncestralDiscreteScheduler", Eta = 0, ClipSkip = 1,
        Height = 64, Width = 96, Model = "/models/sd15", Lora = "/runs/fix/pytorch_lora_weights.safetensors", LoraScale = 0.8,
        Dtype = "bfloat16", Device = "cuda:0", Method = "focus-n-fix",
    };

    [Fact]
    public void ParametersFollowTheA1111InfotextFormat()
    {
        Assert.Equal("a red circle, in the top left\nNegative prompt: blurry\n" +
            "Steps: 30, Sampler: Euler a, CFG scale: 7.25, Seed: 1234567890123, Size: 96x64, Model: sd15, Clip skip: 2, " +
            "Lora: pytorch_lora_weights, Lora scale: 0.8, Method: focus-n-fix", Example().ToA1111());
        var plain = Example() with { NegativePrompt = "", ClipSkip = 0, Lora = null, Method = null, Scheduler = null, SchedulerClass = "DDIMScheduler", Eta = 0.5, Model = "/m/a,b" };
        Assert.Equal("a red circle, in the top left\nSteps: 30, Sampler: DDIM, CFG scale: 7.25, Seed: 1234567890123, Size: 96x64, Model: \"a,b\", Eta: 0.5",
            plain.ToA1111());
        Assert.EndsWith("Image: mask", plain.As("mask").ToA1111());
    }

    [Fact]
    public void JsonRoundTripsEveryField()
    {
        var info = Example();
        Assert.Equal(info, GenerationInfo.FromJson(info.ToJson(), "x.png"));
        var nulls = info with { Lora = null, Scheduler = null, Method = null, Prompt = "ünïcödé \"quoted\"\nline" };
        Assert.Equal(nulls, GenerationInfo.FromJson(nulls.ToJson(), "x.png"));
        var safe = info with { Sld = new SldOptions("green triangle", SldSettings.Strong) };
        Assert.Equal(safe, GenerationInfo.FromJson(safe.ToJson(), "x.png"));
    }

    [Fact]
    public void PngCarriesBothChunksAndBadMetadataIsAClearError()
    {
        using var g = new Generator(5);
        using var image = rand(new long[] { 3, 8, 8 }, generator: g);
        var path = Path.Combine(_tmp, "a.png");
        Images.SavePng(image, path, Example().PngText());
        var text = Images.ReadPngText(path);
        Assert.Equal(Example().ToA1111(), text[GenerationInfo.ParametersKeyword]);
        Assert.Equal(Example(), GenerationInfo.FromPng(path));
        using (var back = Images.LoadImage(path))
        using (var u8 = Images.ToUint8(image.unsqueeze(0)))
        using (var u8Back = Images.ToUint8(back.unsqueeze(0)))
            Assert.True(u8.eq(u8Back).all().item<bool>(), "metadata must not change the pixels");

        // Non-Latin-1 text goes into iTXt chunks and must come back unchanged.
        var unicode = Example() with { Prompt = "ünïcödé ☂ 雨傘", NegativePrompt = "— dash" };
        var upath = Path.Combine(_tmp, "u.png");
        Images.SavePng(image, upath, unicode.PngText());
        Assert.Equal(unicode, GenerationInfo.FromPng(upath));
        Assert.StartsWith("ünïcödé ☂ 雨傘\nNegative prompt: — dash\n", Images.ReadPngText(upath)[GenerationInfo.ParametersKeyword]);

        var bare = Path.Combine(_tmp, "bare.png");
        Images.SavePng(image, bare);
        var e = Assert.Throws<InvalidInputException>(() => GenerationInfo.FromPng(bare));
        Assert.Contains(bare, e.Message);
        Assert.Contains("'focusnfix'", e.Message);

        var broken = Path.Combine(_tmp, "broken.png");
        Images.SavePng(image, broken, new[] { (GenerationInfo.JsonKeyword, "{\"prompt\": ") });
        e = Assert.Throws<InvalidInputException>(() => GenerationInfo.FromPng(broken));
        Assert.Contains("not valid JSON", e.Message);

        var json = Example().ToJson();
        var missing = json.Replace("\"steps\":30,", "");
        Assert.NotEqual(json, missing);
        e = Assert.Throws<InvalidInputException>(() => GenerationInfo.FromJson(missing, "m.png"));
        Assert.Contains("'steps'", e.Message);
        e = Assert.Throws<InvalidInputException>(() => GenerationInfo.FromJson(json.Replace("\"euler-a\"", "\"warp\""), "m.png"));
        Assert.Contains("'warp'", e.Message);
        e = Assert.Throws<InvalidInputException>(() => GenerationInfo.FromJson(json.Replace("\"seed\":1234567890123", "\"seed\":\"one\""), "m.png"));
        Assert.Contains("'seed'", e.Message);

        File.WriteAllText(Path.Combine(_tmp, "not.png"), "hello");
        e = Assert.Throws<InvalidInputException>(() => GenerationInfo.FromPng(Path.Combine(_tmp, "not.png")));
        Assert.Contains("not.png", e.Message);
    }
}
