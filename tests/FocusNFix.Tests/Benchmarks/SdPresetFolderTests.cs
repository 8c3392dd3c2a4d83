using System.Text.Json.Nodes;
using FocusNFix.Benchmarks;
using FocusNFix.IO;
using FocusNFix.Models;
using FocusNFix.Pipelines;
using Xunit;

namespace FocusNFix.Tests.Benchmarks;

public sealed class SdPresetFolderTests : IDisposable
{
    readonly string _tmp = Path.Combine(Path.GetTempPath(), "fnf-preset-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_tmp)) Directory.Delete(_tmp, true);
    }

    static JsonObject Config(string component, string file = "config.json") =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Golden.Case("pipeline_tiny_sd15"), component, file)))!;

    /// <summary>The golden tiny SD pipeline's configs as a preset: the real layout, 12 MB of weights.</summary>
    static SdPreset Tiny(ulong seed = 0) => new("tiny", Config("unet"), Config("vae"), Config("text_encoder"), Config("scheduler", "scheduler_config.json"), seed);

    static string Tokenizer => Golden.Case("clip_tokenizer");

    [Fact]
    public void BuildsALoadableFolderOnceAndReusesIt()
    {
        var messages = new List<string>();
        var folder = SdPresetFolder.Ensure(Tiny(), _tmp, Tokenizer, messages.Add);
        Assert.Equal(Path.Combine(_tmp, "presets", "tiny"), folder);
        Assert.True(SdPresetFolder.IsComplete(folder, Tiny()));
        Assert.NotEmpty(messages);
        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(_tmp, "presets"), "*.tmp-*"));

        using (var pipe = TextToImagePipeline.Load(folder))
        {
            Assert.IsType<FocusNFix.Schedulers.DdimScheduler>(pipe.Scheduler);
            Assert.Equal(2, pipe.VaeScaleFactor);
            using var r = pipe.Sample(new[] { "a red circle" }, new SampleOptions { Steps = 2, GuidanceScale = 7.5 });
            Assert.True(r.Images.isfinite().all().item<bool>());
        }

        var unet = Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors");
        var written = File.GetLastWriteTimeUtc(unet);
        messages.Clear();
        Assert.Equal(folder, SdPresetFolder.Ensure(Tiny(), _tmp, Tokenizer, messages.Add));
        Assert.Empty(messages);
        Assert.Equal(written, File.GetLastWriteTimeUtc(unet));
    }

    [Fact]
    public void WeightsAreSeededAndTheSeedIsPartOfTheFingerprint()
    {
        var a = SdPresetFolder.Ensure(Tiny(), Path.Combine(_tmp, "a"), Tokenizer);
        var b = SdPresetFolder.Ensure(Tiny(), Path.Combine(_tmp, "b"), Tokenizer);
        foreach (var f in new[] { "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
        Assert.NotEqual(Tiny(0).Fingerprint(), Tiny(1).Fingerprint());

        // A preset that changed (here the seed) makes the cached folder stale: it is rebuilt with the new weights.
        var before = File.ReadAllBytes(Path.Combine(a, "unet", "diffusion_pytorch_model.safetensors"));
        Assert.False(SdPresetFolder.IsComplete(a, Tiny(1)));
        SdPresetFolder.Ensure(Tiny(1), Path.Combine(_tmp, "a"), Tokenizer);
        Assert.True(SdPresetFolder.IsComplete(a, Tiny(1)));
        Assert.NotEqual(before, File.ReadAllBytes(Path.Combine(a, "unet", "diffusion_pytorch_model.safetensors")));
    }

    [Fact]
    public void AnIncompleteFolderIsRebuiltAndAForeignOneRefused()
    {
        var folder = SdPresetFolder.Ensure(Tiny(), _tmp, Tokenizer);
        var vae = Path.Combine(folder, "vae", "diffusion_pytorch_model.safetensors");
        File.WriteAllBytes(vae, new byte[10]); // truncated, as by a full disk or an editor
        Assert.False(SdPresetFolder.IsComplete(folder, Tiny()));
        SdPresetFolder.Ensure(Tiny(), _tmp, Tokenizer);
        Assert.True(SdPresetFolder.IsComplete(folder, Tiny()));

        // Not written by the builder (no marker): someone's files, refused instead of replaced.
        File.Delete(Path.Combine(folder, SdPresetFolder.MarkerName));
        var e = Assert.Throws<InvalidInputException>(() => SdPresetFolder.Ensure(Tiny(), _tmp, Tokenizer));
        Assert.StartsWith(folder + ": exists but is not a preset folder", e.Message);
        Assert.True(File.Exists(vae));
    }

    [Fact]
    public void AbandonedBuildsOfDeadProcessesAreRemoved()
    {
        var presets = Path.Combine(_tmp, "presets");
        // No process has a pid this large (pid_max is at most 2^22).
        var abandoned = Path.Combine(presets, "tiny.tmp-99999999");
        Directory.CreateDirectory(Path.Combine(abandoned, "unet"));
        File.WriteAllText(Path.Combine(abandoned, "unet", "half.safetensors"), "x");
        SdPresetFolder.Ensure(Tiny(), _tmp, Tokenizer);
        Assert.False(Directory.Exists(abandoned));
    }

    [Fact]
    public void AMissingTokenizerIsNamedBeforeAnyWork()
    {
        var e = Assert.Throws<InvalidInputException>(() => SdPresetFolder.Ensure(Tiny(), _tmp, Path.Combine(_tmp, "no-tokenizer")));
        Assert.Contains("vocab.json", e.Message);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "presets", "tiny")));
    }

    [Fact]
    public void CacheRootFollowsTheOverrideThenXdgThenHome()
    {
        var saved = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        try
        {
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", "/x/cache");
            Assert.Equal("/x/cache/focusnfix", SdPresetFolder.CacheRoot());
            Assert.Equal(Path.GetFullPath("given"), SdPresetFolder.CacheRoot("given"));
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", null);
            Assert.Equal(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "focusnfix"), SdPresetFolder.CacheRoot());
        }
        finally { Environment.SetEnvironmentVariable("XDG_CACHE_HOME", saved); }
    }

    /// <summary>
    /// The presets' configs go through the loaders' config readers and give the published parameter counts (counted
    /// from the config, nothing allocated): SD v1.5 UNet 859.52M, SD v2.1 865.91M, VAE 83.65M, CLIP ViT-L/14 text
    /// 123.06M, OpenCLIP ViT-H text (23 layers) 340.39M.
    /// </summary>
    [Theory]
    [InlineData("sd15", 859_520_964, 123_060_480, 8, 64)]
    [InlineData("sd21", 865_910_724, 340_387_840, 5, 96)]
    public void PresetsHaveTheRealArchitectures(string name, long unetParams, long textParams, int firstHeads, int sampleSize)
    {
        var p = SdPreset.ByName(name);
        var unet = UNet2DConditionConfig.FromJson(new JsonConfig(p.Unet, name));
        var vae = AutoencoderKLConfig.FromJson(new JsonConfig(p.Vae, name));
        var text = ClipTextConfig.FromJson(new JsonConfig(p.TextEncoder, name));
        Assert.Equal(unetParams, (long)ModelSizeEstimate.Parameters(unet));
        Assert.Equal(83_653_863, (long)ModelSizeEstimate.Parameters(vae));
        Assert.Equal(textParams, (long)ModelSizeEstimate.Parameters(text));
        Assert.Equal(firstHeads, unet.NumAttentionHeads[0]);
        Assert.Equal(sampleSize, unet.SampleSize);
        Assert.Equal(name == "sd21" ? "gelu" : "quick_gelu", text.HiddenAct);
        var scheduler = FocusNFix.Schedulers.SchedulerFactory.FromConfig(new JsonConfig(p.Scheduler, name));
        Assert.IsType<FocusNFix.Schedulers.DdimScheduler>(scheduler);
        var e = Assert.Throws<InvalidInputException>(() => SdPreset.ByName("sd99"));
        Assert.Equal("--preset sd99: expected one of sd15, sd21", e.Message);
    }
}
