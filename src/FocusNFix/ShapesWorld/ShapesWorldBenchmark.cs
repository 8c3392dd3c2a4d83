namespace FocusNFix.ShapesWorld;

/// <summary>
/// The world in one object: its spec, sampler, renderer and oracle. Library entry points for the CLI
/// (<c>fnf world ...</c>) and the trainers.
/// </summary>
/// <remarks>
/// Named ShapesWorldBenchmark, not ShapesWorld, because its namespace is FocusNFix.ShapesWorld: a class named like
/// its namespace makes every <c>ShapesWorld.X</c> written in a sibling namespace (FocusNFix.WorldModels, the tests)
/// bind to the namespace instead of the class (CS0118), so callers would need aliases.
/// </remarks>
public sealed class ShapesWorldBenchmark
{
    public WorldSpec Spec { get; }
    public SceneSampler Sampler { get; }
    public Renderer Renderer { get; }
    public Oracle Oracle { get; }

    public ShapesWorldBenchmark(WorldSpec spec)
    {
        Spec = spec;
        Sampler = new SceneSampler(spec);
        Renderer = new Renderer(spec);
        Oracle = new Oracle(spec);
    }

    public static ShapesWorldBenchmark Default(int size = 32) => new(WorldSpec.Default(size));

    /// <summary>Loads world.json (a file or a folder holding one).</summary>
    public static ShapesWorldBenchmark Load(string path) => new(WorldSpec.Load(path));

    /// <summary>
    /// Writes world.json to <paramref name="path"/> (a folder gets world.json inside it); returns the file path. An
    /// existing file is refused unless <paramref name="overwrite"/>.
    /// </summary>
    public string WriteSpec(string path, bool overwrite = false)
    {
        if (Directory.Exists(path) || path.EndsWith('/') || path.EndsWith(Path.DirectorySeparatorChar)) path = Path.Combine(path, WorldSpec.FileName);
        IO.OutputPaths.RefuseExisting(new[] { path }, overwrite);
        Spec.Save(path);
        return path;
    }

    /// <summary>The rendered scene of a seed (optionally within a split): image, defect masks, scene.</summary>
    public RenderedScene Generate(long seed, Split? split = null) => Renderer.Render(Sampler.Sample(seed, split));

    /// <summary>A rendered scene for a prompt; geometry and defects drawn from the seed at the world's rates.</summary>
    public RenderedScene Generate(string prompt, long seed) => Renderer.Render(Sampler.FromPrompt(prompt, seed));

    public OracleReport Judge(byte[] rgb, string prompt) => Oracle.Judge(rgb, prompt);
    public OracleReport Judge(float[] chw, string prompt) => Oracle.Judge(chw, prompt);

    /// <summary>
    /// The oracle's figures for one image [3,H,W] in [0,1], as the evaluator reports them (its <c>Oracle</c>): per defect
    /// kind the world defines, presence (<c>oracle_KIND</c>) and residue (<c>oracle_KIND_residue</c>); colour in place
    /// (share of objects), every object correct (an undecided shape counts as wrong), every shape decided.
    /// </summary>
    public IReadOnlyDictionary<string, double> OracleFigures(TorchSharp.torch.Tensor image, string prompt)
    {
        var report = Oracle.Judge(image, prompt);
        var figures = new Dictionary<string, double>();
        foreach (var kind in Spec.DefectKinds)
        {
            figures[$"oracle_{DefectKindNames.Name(kind)}"] = report[kind].Present ? 1 : 0;
            figures[$"oracle_{DefectKindNames.Name(kind)}_residue"] = report[kind].HasResidue ? 1 : 0;
        }
        figures["oracle_colour_in_place"] = report.Objects.Count == 0 ? double.NaN : report.Objects.Count(o => o.ColourPresent) / (double)report.Objects.Count;
        figures["oracle_all_objects_correct"] = report.AllObjectsCorrect ? 1 : 0;
        figures["oracle_all_shapes_decided"] = report.AllShapesDecided ? 1 : 0;
        return figures;
    }

    /// <summary>
    /// <see cref="OracleFigures(TorchSharp.torch.Tensor, string)"/> plus figures against the original image of the same
    /// prompt and seed: per kind the share of the original's defect mask that is still residue
    /// (<c>oracle_KIND_residue_share</c>, NaN where the original has none), and where the original carries rot, its
    /// outcome (<c>oracle_rot_fixed</c>, <c>oracle_rot_erased</c>, <c>oracle_rot_recoloured</c>, <c>oracle_rot_misshapen</c>,
    /// <c>oracle_rot_left</c>: 0 or 1, NaN where the original has no rot).
    /// </summary>
    public IReadOnlyDictionary<string, double> OracleFigures(TorchSharp.torch.Tensor image, TorchSharp.torch.Tensor original, string prompt)
    {
        var figures = new Dictionary<string, double>(OracleFigures(image, prompt));
        var bytes = WorldImage.FromTensor(image);
        var reference = WorldImage.FromTensor(original);
        foreach (var kind in Spec.DefectKinds)
        {
            var mask = Oracle.Defect(reference, kind);
            figures[$"oracle_{DefectKindNames.Name(kind)}_residue_share"] = mask.Present ? Oracle.ResidueShare(bytes, kind, mask.Mask) : double.NaN;
        }
        if (Spec.Rot is not null)
        {
            var fix = Oracle.JudgeRotFix(bytes, reference, prompt);
            double Is(RotOutcome o) => fix is null ? double.NaN : fix.Outcome == o ? 1 : 0;
            figures["oracle_rot_fixed"] = Is(RotOutcome.Fixed);
            figures["oracle_rot_erased"] = Is(RotOutcome.Erased);
            figures["oracle_rot_recoloured"] = Is(RotOutcome.Recoloured);
            figures["oracle_rot_misshapen"] = Is(RotOutcome.Misshapen);
            figures["oracle_rot_left"] = Is(RotOutcome.Rotten);
        }
        return figures;
    }
}
