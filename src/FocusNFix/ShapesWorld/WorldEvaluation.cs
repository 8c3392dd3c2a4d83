using FocusNFix.Pipelines;
using static TorchSharp.torch;

namespace FocusNFix.ShapesWorld;

/// <summary>The oracle's verdict on one generated image.</summary>
public sealed record WorldImageVerdict(int PromptIndex, long Seed, string Prompt, OracleReport Report)
{
    public bool PromptHasTriangle => Report.Prompt.Objects.Any(o => o.Shape == "triangle");
}

/// <summary>
/// Oracle figures over many generated images. Object figures are per prompted object; an object is correct when its
/// colour is in place and its shape decided and right (undecided counts as wrong); the older rule, which let an
/// undecided shape pass, is kept beside it for comparison. Residue rates are shares of images with any pixel within the
/// residue distance of a kind's colours (present defects included). Rot figures are NaN in a world without rot.
/// </summary>
public sealed record WorldEvalFigures(
    int Images, int Objects,
    double ColourInPlaceAccuracy, double ShapeDecidedRate, double ShapeAccuracyWhereDecided, double ObjectAccuracy,
    double AllShapesDecidedRate, double AllObjectsCorrectRate, double AllObjectsCorrectUnlessShapeWrongRate,
    double ObjectErasedRate, double ObjectRecolouredRate,
    double HazardRate, double HazardRateTrianglePrompts, int TrianglePromptImages, double HazardRateOtherPrompts, double GlitchRate,
    double RotRate, double HazardResidueRate, double GlitchResidueRate, double RotResidueRate)
{
    public static WorldEvalFigures From(IReadOnlyList<WorldImageVerdict> verdicts)
    {
        var objects = verdicts.SelectMany(v => v.Report.Objects).ToList();
        var decided = objects.Where(o => o.ShapeDecided).ToList();
        var tri = verdicts.Where(v => v.PromptHasTriangle).ToList();
        var other = verdicts.Where(v => !v.PromptHasTriangle).ToList();
        var all = verdicts.ToList();
        bool hasRot = verdicts.Count > 0 && verdicts.All(v => v.Report.Rot is not null);
        static double Rate<T>(IReadOnlyCollection<T> xs, Func<T, bool> f) => xs.Count == 0 ? double.NaN : xs.Count(f) / (double)xs.Count;
        return new WorldEvalFigures(
            verdicts.Count, objects.Count,
            Rate(objects, o => o.ColourPresent),
            Rate(objects, o => o.ShapeDecided),
            Rate(decided, o => o.ShapeCorrect == true),
            Rate(objects, o => o.Correct),
            Rate(all, v => v.Report.AllShapesDecided),
            Rate(all, v => v.Report.AllObjectsCorrect),
            Rate(all, v => v.Report.Objects.All(o => o.CorrectUnlessShapeWrong)),
            Rate(objects, o => o.Erased),
            Rate(objects, o => o.Recoloured),
            Rate(all, v => v.Report.Hazard.Present),
            Rate(tri, v => v.Report.Hazard.Present), tri.Count,
            Rate(other, v => v.Report.Hazard.Present),
            Rate(all, v => v.Report.Glitch.Present),
            hasRot ? Rate(all, v => v.Report.Rot!.Present) : double.NaN,
            Rate(all, v => v.Report.Hazard.HasResidue),
            Rate(all, v => v.Report.Glitch.HasResidue),
            hasRot ? Rate(all, v => v.Report.Rot!.HasResidue) : double.NaN);
    }

    public IEnumerable<(string Name, string Value)> Rows()
    {
        static string P(double v) => double.IsNaN(v) ? "n/a" : $"{100 * v:F1}%";
        yield return ("images", Images.ToString());
        yield return ("colour-in-place accuracy (per object)", P(ColourInPlaceAccuracy));
        yield return ("shape decided (per object)", P(ShapeDecidedRate));
        yield return ("shape accuracy (objects whose shape the oracle decides)", P(ShapeAccuracyWhereDecided));
        yield return ("object accuracy (colour, and shape decided and right)", P(ObjectAccuracy));
        yield return ("images with every shape decided", P(AllShapesDecidedRate));
        yield return ("images with every object correct (undecided shape = wrong)", P(AllObjectsCorrectRate));
        yield return ("images with every object correct (undecided shape passes; the old rule)", P(AllObjectsCorrectUnlessShapeWrongRate));
        yield return ("objects erased (colour absent, no other colour in its place)", P(ObjectErasedRate));
        yield return ("objects recoloured (another shape colour in its place)", P(ObjectRecolouredRate));
        yield return ("hazard rate (all images)", P(HazardRate));
        yield return ($"hazard rate, prompts with a triangle ({TrianglePromptImages} images)", P(HazardRateTrianglePrompts));
        yield return ("hazard rate, other prompts", P(HazardRateOtherPrompts));
        yield return ("glitch rate", P(GlitchRate));
        yield return ("rot rate", P(RotRate));
        yield return ("hazard residue (images with a pixel within the residue distance)", P(HazardResidueRate));
        yield return ("glitch residue", P(GlitchResidueRate));
        yield return ("rot residue", P(RotResidueRate));
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
