using FocusNFix.Pipelines;
using static TorchSharp.torch;

namespace FocusNFix.ShapesWorld;

/// <summary>The oracle's verdict on one generated image.</summary>
public sealed record WorldImageVerdict(int PromptIndex, long Seed, string Prompt, OracleReport Report)
{
    public bool PromptHasTriangle => Report.Prompt.Objects.Any(o => o.Shape == "triangle");
}

/// <summary>Oracle figures over many generated images (the acceptance figures for the base model).</summary>
public sealed record WorldEvalFigures(
    int Images, int Objects,
    double ColourInPlaceAccuracy, double ShapeAccuracyWhereDecided, double ObjectAccuracy, double AllObjectsCorrectRate,
    double HazardRate, double HazardRateTrianglePrompts, int TrianglePromptImages, double HazardRateOtherPrompts, double GlitchRate)
{
    public static WorldEvalFigures From(IReadOnlyList<WorldImageVerdict> verdicts)
    {
        var objects = verdicts.SelectMany(v => v.Report.Objects).ToList();
        var decided = objects.Where(o => o.ShapeCorrect.HasValue).ToList();
        var tri = verdicts.Where(v => v.PromptHasTriangle).ToList();
        var other = verdicts.Where(v => !v.PromptHasTriangle).ToList();
        static double Rate<T>(IReadOnlyCollection<T> xs, Func<T, bool> f) => xs.Count == 0 ? double.NaN : xs.Count(f) / (double)xs.Count;
        return new WorldEvalFigures(
            verdicts.Count, objects.Count,
            Rate(objects, o => o.ColourPresent),
            Rate(decided, o => o.ShapeCorrect == true),
            Rate(objects, o => o.Correct),
            Rate(verdicts.ToList(), v => v.Report.AllObjectsCorrect),
            Rate(verdicts.ToList(), v => v.Report.Hazard.Present),
            Rate(tri, v => v.Report.Hazard.Present), tri.Count,
            Rate(other, v => v.Report.Hazard.Present),
            Rate(verdicts.ToList(), v => v.Report.Glitch.Present));
    }

    public IEnumerable<(string Name, string Value)> Rows()
    {
        static string P(double v) => double.IsNaN(v) ? "n/a" : $"{100 * v:F1}%";
        yield return ("images", Images.ToString());
        yield return ("colour-in-place accuracy (per object)", P(ColourInPlaceAccuracy));
        yield return ("shape accuracy (objects whose shape the oracle decides)", P(ShapeAccuracyWhereDecided));
        yield return ("object accuracy (colour and shape)", P(ObjectAccuracy));
        yield return ("images with every object correct", P(AllObjectsCorrectRate));
        yield return ("hazard rate (all images)", P(HazardRate));
        yield return ($"hazard rate, prompts with a triangle ({TrianglePromptImages} images)", P(HazardRateTrianglePrompts));
        yield return ("hazard rate, other prompts", P(HazardRateOtherPrompts));
        yield return ("glitch rate", P(GlitchRate));
    }

    public string ToMarkdown() => "| figure | value |\n|---|---|\n" + string.Concat(Rows().Select(r => $"| {r.Name} | {r.Value} |\n"));
}

/// <summary>Samples prompts x seeds from a pipeline and judges every image with the world's oracle.</summary>
public static class WorldEvaluation
{
    public static List<WorldImageVerdict> Run(TextToImagePipeline pipe, ShapesWorldBenchmark world, IReadOnlyList<string> prompts,
        IReadOnlyList<long> seeds, int steps, double guidance, int batchSize = 64, Action<int, int>? progress = null,
        Action<int, long, Tensor>? onImage = null)
    {
        var jobs = prompts.SelectMany((p, i) => seeds.Select(s => (Index: i, Prompt: p, Seed: s))).ToList();
        var verdicts = new List<WorldImageVerdict>();
        for (int start = 0; start < jobs.Count; start += batchSize)
        {
            var chunk = jobs.Skip(start).Take(batchSize).ToList();
            var options = new SampleOptions { Steps = steps, GuidanceScale = guidance, Seeds = chunk.Select(j => j.Seed).ToList() };
            using var result = pipe.Sample(chunk.Select(j => j.Prompt).ToList(), options);
            for (int k = 0; k < chunk.Count; k++)
            {
                using var img = result.Images[k].cpu();
                verdicts.Add(new WorldImageVerdict(chunk[k].Index, chunk[k].Seed, chunk[k].Prompt, world.Oracle.Judge(img, chunk[k].Prompt)));
                onImage?.Invoke(chunk[k].Index, chunk[k].Seed, img);
            }
            progress?.Invoke(Math.Min(start + batchSize, jobs.Count), jobs.Count);
        }
        return verdicts;
    }

    /// <summary>
    /// A pipeline's samples for prompts x seeds with its recommended sampling, [N,3,H,W] in [0,1] on the CPU, in the
    /// order prompt-major (training data for the world's models, labelled afterwards by the oracle).
    /// </summary>
    public static Tensor SampleImages(TextToImagePipeline pipe, ShapesWorldBenchmark world, IReadOnlyList<string> prompts, IReadOnlyList<long> seeds,
        Action<int, int>? progress = null)
    {
        if (prompts.Count == 0 || seeds.Count == 0) throw new ArgumentException("no prompts or no seeds to sample");
        var parts = new List<Tensor>();
        var (steps, guidance) = pipe.Folder.ResolveSampling(null, null);
        try
        {
            Run(pipe, world, prompts, seeds, steps, guidance, progress: progress, onImage: (_, _, img) => parts.Add(img.clone()));
            return stack(parts);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }
}
