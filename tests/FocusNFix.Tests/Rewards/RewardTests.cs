using FocusNFix.IO;
using FocusNFix.Models;
using FocusNFix.Rewards;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static FocusNFix.Tests.Rewards.TinyRewardModels;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Rewards;

public class RewardTests : IDisposable
{
    static readonly string[] Prompts = { "a red cat on a mat", "two dogs in the snow" };
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-reward-").FullName;
    readonly ITestOutputHelper _out;

    public RewardTests(ITestOutputHelper output) => _out = output;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Random non-square images, so resize and crop both act.</summary>
    static Tensor RandomImages(int seed = 1)
    {
        torch.manual_seed(seed);
        return torch.rand(2, 3, 40, 52);
    }

    /// <summary>Scores a batch, checks shape and finiteness, backpropagates, returns the image gradient.</summary>
    Tensor ScoreAndGradient(IReward reward, out Tensor scores)
    {
        var images = RandomImages().requires_grad_(true);
        scores = reward.Score(images, Prompts);
        Assert.Equal(new long[] { 2 }, scores.shape);
        Assert.True(scores.isfinite().all().item<bool>(), $"{reward.Name}: scores must be finite");
        scores.sum().backward();
        var g = images.grad!;
        Assert.True(g.isfinite().all().item<bool>(), $"{reward.Name}: gradient must be finite");
        // Each image's score depends on its own pixels only, so both images must get a gradient.
        for (int i = 0; i < 2; i++)
            Assert.True(g[i].abs().max().item<float>() > 0, $"{reward.Name}: gradient of image {i} is zero");
        _out.WriteLine($"{reward.Name}: scores [{string.Join(", ", scores.data<float>().ToArray())}], |grad| max {g.abs().max().item<float>():E2}");
        return g;
    }

    // ---------------------------------------------------------------- preprocessing

    [Fact]
    public void PreprocessFollowsTransformersGeometry()
    {
        var p = ClipPreprocess.OpenAi(32);
        Assert.Equal(new ClipCrop(48, 64, 32, 42, 0, 5, 32, 32), p.Geometry(48, 64));   // int(32*64/48) = 42
        Assert.Equal(new ClipCrop(77, 40, 61, 32, 14, 0, 32, 32), p.Geometry(77, 40));  // int(32*77/40) = 61
        using var x = torch.rand(2, 3, 32, 32);
        using var y = p.Apply(x);
        using var mean = torch.tensor(ClipPreprocess.OpenAiMean).view(1, 3, 1, 1).to(float32);
        using var std = torch.tensor(ClipPreprocess.OpenAiStd).view(1, 3, 1, 1).to(float32);
        using var expected = (x - mean) / std;
        Golden.AssertClose(expected, y, 1e-6, 0, "normalise only at the tower's size");
    }

    [Fact]
    public void PreprocessIsDifferentiableAndCropMapsBack()
    {
        var p = ClipPreprocess.OpenAi(32);
        using var x = torch.rand(1, 3, 48, 64).requires_grad_(true);
        using var y = p.Apply(x);
        Assert.Equal(new long[] { 1, 3, 32, 32 }, y.shape);
        y.sum().backward();
        Assert.True(x.grad!.abs().sum().item<float>() > 0);
        // The crop of a 48x64 image covers columns ~[7.6, 56.4): a map of ones over it comes back there only.
        using var ones = torch.ones(1, 1, 8, 8);
        using var back = p.Geometry(48, 64).ToImage(ones);
        Assert.Equal(new long[] { 1, 1, 48, 64 }, back.shape);
        Assert.True(back[0, 0, 24, 32].item<float>() > 0.99);
        Assert.True(back[0, 0, TensorIndex.Colon, TensorIndex.Slice(0, 6)].abs().max().item<float>() < 1e-6);
        Assert.True(back[0, 0, TensorIndex.Colon, TensorIndex.Slice(59, 64)].abs().max().item<float>() < 1e-6);
    }

    [Fact]
    public void PreprocessReadsPreprocessorConfig()
    {
        File.WriteAllText(Path.Combine(_dir, "preprocessor_config.json"),
            """{"crop_size": {"height": 32, "width": 32}, "size": {"shortest_edge": 40}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}""");
        var p = ClipPreprocess.Load(_dir, 32);
        Assert.Equal(40, p.ShortestEdge);
        Assert.Equal(32, p.CropSize);
        Assert.Equal(new[] { 0.5, 0.5, 0.5 }, p.Mean);
        var e = Assert.Throws<InvalidInputException>(() => ClipPreprocess.Load(_dir, 224));
        Assert.Contains("224", e.Message);
    }

    // ---------------------------------------------------------------- safety

    [Fact]
    public void SafetyRewardLoadsScoresAndHasGradient()
    {
        using var reward = SafetyReward.FromPretrained(SafetyFolder);
        ScoreAndGradient(reward, out var scores);
        Assert.True(scores.le(0).all().item<bool>(), "the safety reward is never positive");
    }

    [Fact]
    public void SafetyRewardFollowsItsDocumentedFormula()
    {
        using var reward = SafetyReward.FromPretrained(SafetyFolder, temperature: 0.02, margin: 0.01);
        using var images = RandomImages(2);
        using var scores = reward.Score(images, Array.Empty<string>());
        var o = reward.Check(images);
        var w = Safetensors.Load(Path.Combine(SafetyFolder, "model.safetensors"));
        double tau = 0.02;
        var u = o.SpecialCosDist - w["special_care_embeds_weights"];
        var adj = 0.01 * torch.sigmoid(u.amax(new long[] { 1 }, keepdim: true) / tau);
        var s = o.CosDist - w["concept_embeds_weights"] + adj;
        var expected = -tau * nn.functional.softplus((s + 0.01) / tau).sum(1);
        _out.WriteLine($"safety formula: {Golden.AssertClose(expected, scores, 1e-6, 1e-5, "safety reward"):E2}");
        // The smoothed concept scores differ from the checker's by at most the 0.01 special-care step.
        Assert.True((s - o.ConceptScores).abs().max().item<float>() <= 0.01 + 1e-6);
    }

    [Fact]
    public void SafetyFlagsAreTheCheckersDecision()
    {
        // Undo the feature extractor's normalisation of the golden clip_input: 32x32 images pass the
        // preprocessing unchanged but for the normalisation, so the checker sees the golden input again.
        var clipInput = Golden.Inputs("safety_checker_tiny")["clip_input"];
        using var mean = torch.tensor(ClipPreprocess.OpenAiMean).view(1, 3, 1, 1).to(float32);
        using var std = torch.tensor(ClipPreprocess.OpenAiStd).view(1, 3, 1, 1).to(float32);
        using var images = clipInput * std + mean;
        using var reward = SafetyReward.FromPretrained(SafetyFolder);
        Assert.Equal(new[] { true, false }, reward.Flags(images));
        using var scores = reward.Score(images, Array.Empty<string>());
        Assert.True(scores[0].item<float>() < scores[1].item<float>(), "the flagged image must score lower");
    }

    [Fact]
    public void SafetyRefusesWeightsOfAnotherModel()
    {
        var e = Assert.Throws<InvalidInputException>(() => SafetyReward.FromPretrained(VisionFolder));
        Assert.Contains("StableDiffusionSafetyChecker", e.Message);
        Assert.Contains("not a full CLIP config", e.Message);

        // Right config, wrong weights: a CLIP vision model's file in a safety checker folder.
        var folder = Path.Combine(_dir, "mixed");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(SafetyFolder, "config.json"), Path.Combine(folder, "config.json"));
        File.Copy(Path.Combine(VisionFolder, "model.safetensors"), Path.Combine(folder, "model.safetensors"));
        e = Assert.Throws<InvalidInputException>(() => SafetyReward.FromPretrained(folder));
        Assert.Contains("missing keys", e.Message);
        Assert.Contains("concept_embeds", e.Message);
    }

    // ---------------------------------------------------------------- aesthetic

    [Fact]
    public void AestheticRewardLoadsScoresAndHasGradient()
    {
        var mlpPath = WriteAestheticMlp(_dir, 24, new[] { 16, 8, 8, 4 });
        using var reward = AestheticReward.FromPretrained(VisionFolder, mlpPath);
        ScoreAndGradient(reward, out var scores);

        // Same number by hand: CLIP image embedding, L2-normalised, then the five linears.
        using var vision = ClipVisionModelWithProjection.FromPretrained(VisionFolder);
        using var images = RandomImages();
        var embeds = vision.Forward(ClipPreprocess.OpenAi(32).Apply(images)).ImageEmbeds;
        var x = embeds / embeds.norm(1, true, 2);
        var w = Safetensors.Load(mlpPath);
        foreach (var i in new[] { 0, 2, 4, 6, 7 }) x = nn.functional.linear(x, w[$"layers.{i}.weight"], w[$"layers.{i}.bias"]);
        _out.WriteLine($"aesthetic by hand: {Golden.AssertClose(x.squeeze(1), scores, 1e-5, 1e-5, "aesthetic"):E2}");
    }

    [Fact]
    public void AestheticRefusesWrongFiles()
    {
        var e = Assert.Throws<InvalidInputException>(() => AestheticMlp.Load(Path.Combine(VisionFolder, "model.safetensors")));
        Assert.Contains("not a LAION aesthetic predictor MLP", e.Message);
        Assert.Contains("layers.0.weight", e.Message);

        // The published 768-d MLP on a 24-d CLIP: named for what it is.
        var mlp768 = WriteAestheticMlp(_dir, 768, new[] { 8, 8, 8, 8 });
        e = Assert.Throws<InvalidInputException>(() => AestheticReward.FromPretrained(VisionFolder, mlp768));
        Assert.Contains("768", e.Message);
        Assert.Contains("24", e.Message);

        var pth = Path.Combine(_dir, "sac+logos+ava1-l14-linearMSE.pth");
        File.WriteAllText(pth, "not really a pickle");
        e = Assert.Throws<InvalidInputException>(() => AestheticMlp.Load(pth));
        Assert.Contains("safetensors", e.Message);
    }

    // ---------------------------------------------------------------- CLIPScore and PickScore

    [Fact]
    public void ClipScoreLoadsScoresAndHasGradient()
    {
        var folder = WriteClipModelFolder(_dir);
        var seen = new List<string>();
        // Without the paper's max(cos, 0), so every random image gets a gradient whatever its cosine.
        using var unclamped = ClipScoreReward.FromPretrained(folder, Tokenizer(seen), clampNegative: false);
        ScoreAndGradient(unclamped, out var raw);
        Assert.Contains("A photo depicts a red cat on a mat", seen);

        // cos from CLIPModel's own logits with the prefixed prompts.
        using var clip = ClipModel.FromPretrained(folder);
        using var images = RandomImages();
        var ids = Tokenizer()(Prompts.Select(p => "A photo depicts " + p).ToArray());
        var (perImage, _) = clip.Forward(ids, ClipPreprocess.OpenAi(32).Apply(images));
        var cos = perImage.diagonal() / clip.LogitScale.exp();
        _out.WriteLine($"clipscore cos {string.Join(", ", cos.data<float>().ToArray())}");
        Golden.AssertClose(2.5 * cos, raw, 1e-5, 1e-5, "clipscore without clamp");

        // The paper's definition, 2.5 * max(cos, 0): an image with cos <= 0 scores 0 and gets no gradient.
        using var reward = ClipScoreReward.FromPretrained(folder, Tokenizer());
        using var x = RandomImages().requires_grad_(true);
        using var scores = reward.Score(x, Prompts);
        Golden.AssertClose(2.5 * cos.clamp_min(0), scores, 1e-5, 1e-5, "clipscore");
        scores.sum().backward();
        for (int i = 0; i < 2; i++)
            Assert.Equal(cos[i].item<float>() > 0, x.grad![i].abs().max().item<float>() > 0);

        using var bare = ClipScoreReward.FromPretrained(folder, Tokenizer(), weight: 100, prefix: "", clampNegative: false);
        using var bareScores = bare.Score(images, Prompts);
        var (perImageBare, _) = clip.Forward(Tokenizer()(Prompts), ClipPreprocess.OpenAi(32).Apply(images));
        Golden.AssertClose(100 * perImageBare.diagonal() / clip.LogitScale.exp(), bareScores, 1e-4, 1e-5, "clipscore, no prefix, no clamp");
    }

    [Fact]
    public void PickScoreLoadsScoresAndHasGradient()
    {
        var folder = WriteClipModelFolder(_dir);
        using var reward = PickScoreReward.FromPretrained(folder, Tokenizer());
        ScoreAndGradient(reward, out var scores);
        using var clip = ClipModel.FromPretrained(folder);
        using var images = RandomImages();
        var (perImage, _) = clip.Forward(Tokenizer()(Prompts), ClipPreprocess.OpenAi(32).Apply(images));
        Golden.AssertClose(perImage.diagonal(), scores, 1e-5, 1e-5, "pickscore = logits_per_image diagonal");
    }

    [Fact]
    public void TextRewardsTokenizeWithTheTokenizerFolder()
    {
        // The tiny SD pipeline's text encoder (vocabulary 49408) and real CLIP tokenizer files; the golden run
        // holds the ids transformers gave its two prompts.
        var pipeline = Golden.Case("pipeline_tiny_sd15");
        var folder = WriteClipModelFolder(_dir, Path.Combine(pipeline, "text_encoder"));
        var run = Golden.Case("pipeline_tiny_sd15_run");
        var prompts = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run, "inputs.json")))!["prompts"]!
            .AsArray().Select(n => (string)n!).ToArray();
        var goldenIds = Golden.Outputs("pipeline_tiny_sd15_run")["input_ids"];
        using var byFolder = PickScoreReward.FromPretrained(folder, Path.Combine(pipeline, "tokenizer"));
        using var byIds = PickScoreReward.FromPretrained(folder, p => goldenIds.clone());
        using var images = RandomImages();
        using var a = byFolder.Score(images, prompts);
        using var b = byIds.Score(images, prompts);
        Golden.AssertClose(b, a, 0, 0, "tokenizer folder vs golden ids");
    }

    [Fact]
    public void TextRewardsCheckPromptsAndWeights()
    {
        var folder = WriteClipModelFolder(_dir);
        using var reward = PickScoreReward.FromPretrained(folder, Tokenizer());
        using var images = RandomImages();
        using var one = reward.Score(images, new[] { "a cat" });
        using var two = reward.Score(images, new[] { "a cat", "a cat" });
        Golden.AssertClose(two, one, 0, 0, "a single prompt is repeated");
        var e = Assert.Throws<InvalidInputException>(() => reward.Score(images, new[] { "a", "b", "c" }));
        Assert.Contains("3 prompts for 2 images", e.Message);
        e = Assert.Throws<InvalidInputException>(() => ClipScoreReward.FromPretrained(SafetyFolder, Tokenizer()));
        Assert.Contains("CLIPModel", e.Message);
    }

    // ---------------------------------------------------------------- weighted sums

    [Fact]
    public void WeightedRewardSumsItsParts()
    {
        using var safety = SafetyReward.FromPretrained(SafetyFolder);
        using var aesthetic = AestheticReward.FromPretrained(VisionFolder, WriteAestheticMlp(_dir, 24, new[] { 16, 8, 8, 4 }));
        var sum = new WeightedReward(new (IReward, double)[] { (safety, 2.0), (aesthetic, -0.5) });
        Assert.Equal("2*safety + -0.5*aesthetic", sum.Name);
        var g = ScoreAndGradient(sum, out var scores);
        using var images = RandomImages();
        using var expected = 2.0 * safety.Score(images, Prompts) - 0.5 * aesthetic.Score(images, Prompts);
        Golden.AssertClose(expected, scores, 1e-6, 1e-6, "weighted sum");
        Assert.Throws<InvalidInputException>(() => new WeightedReward(Array.Empty<(IReward, double)>()));
        Assert.Throws<InvalidInputException>(() => new WeightedReward(new (IReward, double)[] { (safety, double.NaN) }));
    }

    [Fact]
    public void RewardsAreFrozenAndFollowTo()
    {
        using var reward = SafetyReward.FromPretrained(SafetyFolder);
        using var images = RandomImages();
        using var single = reward.Score(images, Prompts);
        reward.to(float64);
        Assert.All(reward.parameters(), p => Assert.False(p.requires_grad));
        Assert.All(reward.parameters(), p => Assert.Equal(float64, p.dtype));
        using var x = images.to(float64).requires_grad_(true);
        using var scores = reward.Score(x, Prompts);
        Assert.Equal(float64, scores.dtype);
        Golden.AssertClose(single, scores, 1e-5, 1e-4, "float64 vs float32");
        scores.sum().backward();
        Assert.True(x.grad!.abs().max().item<double>() > 0);
    }

    [Fact]
    public void RewardsRefuseBadImages()
    {
        using var safety = SafetyReward.FromPretrained(SafetyFolder);
        using var gray = torch.rand(2, 1, 32, 32);
        var e = Assert.Throws<InvalidInputException>(() => safety.Score(gray, Prompts));
        Assert.Contains("[B,3,H,W]", e.Message);
    }
}
