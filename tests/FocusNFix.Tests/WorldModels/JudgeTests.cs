using FocusNFix.ShapesWorld;
using FocusNFix.Tests.ShapesWorld;
using FocusNFix.WorldModels;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.WorldModels;

public class JudgeTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-judge-").FullName;
    static ShapesWorldBenchmark W => TestWorld.Default;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    static AlignmentJudge Fresh(long seed = 1)
    {
        torch.manual_seed(seed);
        var j = new AlignmentJudge(W.Spec);
        j.eval();
        return j;
    }

    static (Tensor Images, RenderedScene[] Scenes) Rendered(int count, int first = 0)
    {
        var scenes = Enumerable.Range(first, count).Select(s => W.Generate(s)).ToArray();
        return (WorldImage.ToBatch(scenes).Images, scenes);
    }

    [Fact]
    public void OutputsHaveOneColourAndShapeDistributionPerPlace()
    {
        using var scope = NewDisposeScope();
        var j = Fresh();
        Assert.InRange(j.ParameterCount, 50_000, 1_000_000);
        Assert.Equal(["red", "green", "blue", "orange", "purple", "none"], j.Colours);
        Assert.Equal(["circle", "square", "triangle", "none"], j.Shapes);
        var (images, _) = Rendered(3);
        using var logits = j.forward(images);
        Assert.Equal(new long[] { 3, 5, 6 }, logits.Colour.shape);
        Assert.Equal(new long[] { 3, 5, 4 }, logits.Shape.shape);
        Assert.Equal(new long[] { 3, 3 }, logits.Background.shape);
        Assert.True(logits.Colour.isfinite().all().item<bool>());
        // Other sizes are resized to the world's.
        using var other = j.forward(torch.rand(2, 3, 48, 48));
        Assert.Equal(new long[] { 2, 5, 6 }, other.Colour.shape);
        // The default 32 px world's places all fit a 14 px window.
        Assert.Equal(14, j.Config.CropSize);
    }

    [Fact]
    public void VerdictsFollowThePromptsAndThePredictions()
    {
        using var scope = NewDisposeScope();
        var j = Fresh();
        var (images, scenes) = Rendered(4);
        var verdicts = j.Judge(images, scenes.Select(s => s.Prompt).ToArray());
        var seen = j.Predict(images);
        Assert.Equal(4, verdicts.Length);
        for (int i = 0; i < 4; i++)
        {
            var v = verdicts[i];
            Assert.Equal(scenes[i].Scene.Description, v.Prompt);
            Assert.Equal(scenes[i].Scene.Objects.Count, v.Objects.Count);
            Assert.Equal(5, v.Places.Count);
            foreach (var o in v.Objects)
            {
                var p = seen[i].Places[W.Spec.PlaceIndex(o.Object.Place)];
                Assert.Equal(p, o.Seen);
                Assert.Equal(p.Colour == o.Object.Colour && p.Shape == o.Object.Shape, o.Correct);
                Assert.InRange(p.ColourProbability, 0, 1);
            }
            Assert.Equal(v.Objects.Count(o => o.Correct) / (double)v.Objects.Count, v.Alignment, 12);
            Assert.Equal(seen[i].Background, v.Background);
        }
        // One prompt for all images; the alignment tensor matches the verdicts.
        const string prompt = "a red circle in the top left on a white background";
        Assert.All(j.Judge(images, [prompt]), v => Assert.Equal(prompt, v.Prompt.ToString()));
        Assert.Equal(new long[] { 4 }, j.Alignment(images, [prompt]).shape);
        Assert.Contains("2 prompts for 4 images", Assert.Throws<InvalidInputException>(() => j.Judge(images, [prompt, prompt])).Message);
        Assert.Contains("unknown shape 'hexagon'", Assert.Throws<InvalidInputException>(() =>
            j.Judge(images, ["a red hexagon in the top left on a white background"])).Message);
    }

    [Fact]
    public void TinyTrainingRunLowersTheLossAndEvaluationCounts()
    {
        var losses = new List<double>();
        var j = JudgeTraining.Train(W, new JudgeTraining.Options(Steps: 20, BatchSize: 4, LearningRate: 3e-3, Seed: 3),
            (step, steps, loss) => losses.Add(loss));
        Assert.Equal(20, losses.Count);
        Assert.True(losses.TakeLast(5).Average() < 0.7 * losses.Take(5).Average(), $"loss {losses.Take(5).Average():F4} -> {losses.TakeLast(5).Average():F4}");
        Assert.False(j.training);

        var e = JudgeTraining.Evaluate(j, W, Split.Test, count: 10, batchSize: 4);
        Assert.Equal(10, e.Images);
        Assert.InRange(e.Objects, 10, 30);
        foreach (var a in new[] { e.ObjectAccuracy, e.ColourAccuracy, e.ShapeAccuracy, e.PlaceAccuracy, e.BackgroundAccuracy, e.ImageAccuracy, e.PromptAccuracy, e.MeanAlignment })
            Assert.InRange(a, 0, 1);
        Assert.True(e.ObjectAccuracy <= Math.Min(e.ColourAccuracy, e.ShapeAccuracy));
        Assert.True(e.ImageAccuracy <= e.BackgroundAccuracy);
        // Evaluation is reproducible.
        Assert.Equal(e, JudgeTraining.Evaluate(j, W, Split.Test, count: 10, batchSize: 4));
    }

    [Fact]
    public void SaveAndLoadGiveIdenticalOutputs()
    {
        using var scope = NewDisposeScope();
        var j = Fresh(7);
        var folder = Path.Combine(_dir, "judge");
        j.SavePretrained(folder);
        foreach (var f in new[] { "config.json", "world.json", "model.safetensors" }) Assert.True(File.Exists(Path.Combine(folder, f)), f);
        Assert.Contains("\"_class_name\": \"FocusNFixAlignmentJudge\"", File.ReadAllText(Path.Combine(folder, "config.json")));

        var loaded = AlignmentJudge.FromPretrained(folder);
        Assert.Equal(W.Spec, loaded.World);
        var images = torch.rand(3, 3, 32, 32);
        using var a = j.forward(images);
        using var b = loaded.forward(images);
        Assert.True(RegionRewardTests.Same(a.Colour, b.Colour));
        Assert.True(RegionRewardTests.Same(a.Shape, b.Shape));
        Assert.True(RegionRewardTests.Same(a.Background, b.Background));
    }

    [Fact]
    public void WrongFoldersGiveClearErrors()
    {
        var rewardFolder = Path.Combine(_dir, "reward");
        torch.manual_seed(2);
        new RegionRewardModel(RegionRewardConfig.For(W.Spec, DefectKind.Hazard)).SavePretrained(rewardFolder);
        var e = Assert.Throws<InvalidInputException>(() => AlignmentJudge.FromPretrained(rewardFolder));
        Assert.Contains("FocusNFixRegionRewardModel", e.Message);
        Assert.Contains("region reward model", e.Message);

        var folder = Path.Combine(_dir, "judge");
        Fresh().SavePretrained(folder);
        var cfg = Path.Combine(folder, "config.json");
        var text = File.ReadAllText(cfg);
        File.WriteAllText(cfg, text.Replace("\"purple\",", "\"pink\","));
        Assert.Contains("does not match its world file", Assert.Throws<InvalidInputException>(() => AlignmentJudge.FromPretrained(folder)).Message);
        File.WriteAllText(cfg, text);
        File.Delete(Path.Combine(folder, "world.json"));
        Assert.Contains("world file not found", Assert.Throws<InvalidInputException>(() => AlignmentJudge.FromPretrained(folder)).Message);
    }
}
