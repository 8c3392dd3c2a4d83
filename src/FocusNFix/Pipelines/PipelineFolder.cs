using FocusNFix.IO;

namespace FocusNFix.Pipelines;

/// <summary>The layout of a diffusers pipeline folder: model_index.json and one subfolder per component.</summary>
public sealed class PipelineFolder
{
    public const string StableDiffusionClass = "StableDiffusionPipeline";
    public const string PixelClass = "FocusNFixPixelPipeline";

    public string Path { get; }
    public string ClassName { get; }
    public JsonConfig Index { get; }
    /// <summary>Component name -> (library, class) for every non-null entry of model_index.json.</summary>
    public IReadOnlyDictionary<string, (string Library, string Class)> Components { get; }

    PipelineFolder(string path, string className, JsonConfig index, Dictionary<string, (string, string)> components)
    { Path = path; ClassName = className; Index = index; Components = components; }

    public bool IsPixelSpace => ClassName == PixelClass;

    public static PipelineFolder Open(string folder)
    {
        InputFile.RequireFolder(folder, "pipeline folder");
        WeightFiles.RefusePickle(folder);
        var indexPath = System.IO.Path.Combine(folder, "model_index.json");
        if (InputFile.KindOf(indexPath) == PathKind.Missing)
        {
            var pickled = Directory.EnumerateFiles(folder).FirstOrDefault(f => f.EndsWith(".ckpt") || f.EndsWith(".bin") || f.EndsWith(".pt"));
            if (pickled != null) throw WeightFiles.PickleRefused(pickled);
            throw new InvalidInputException($"{indexPath}: model_index.json not found; expected a diffusers pipeline folder (model_index.json, unet/, text_encoder/, tokenizer/, scheduler/, and vae/ for latent models)");
        }
        var index = JsonConfig.Load(indexPath);
        var cls = index.RequireString("_class_name");
        if (cls != StableDiffusionClass && cls != PixelClass)
            throw new InvalidInputException($"{indexPath}: _class_name '{cls}' is not supported (expected {StableDiffusionClass} or {PixelClass})");
        var comps = new Dictionary<string, (string, string)>();
        foreach (var (key, node) in index.Root)
        {
            if (key.StartsWith('_') || node is not System.Text.Json.Nodes.JsonArray arr || arr.Count != 2) continue;
            if (arr[0] is null || arr[1] is null) continue; // absent component, written as [null, null]
            comps[key] = (arr[0]!.GetValue<string>(), arr[1]!.GetValue<string>());
        }
        var required = cls == PixelClass ? new[] { "unet", "text_encoder", "tokenizer", "scheduler" } : new[] { "unet", "vae", "text_encoder", "tokenizer", "scheduler" };
        var missing = required.Where(r => !comps.ContainsKey(r)).ToList();
        if (missing.Count > 0) throw new InvalidInputException($"{indexPath}: {cls} needs component(s) {string.Join(", ", missing)}, which model_index.json does not list");
        foreach (var name in comps.Keys)
        {
            var dir = System.IO.Path.Combine(folder, name);
            if (InputFile.KindOf(dir) is var kind && kind != PathKind.Folder)
                throw InputFile.Wrong(dir, $"component folder '{name}' listed in model_index.json", kind, "a folder");
        }
        return new PipelineFolder(folder, cls, index, comps);
    }

    public string Component(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>
    /// The sampling settings the model's authors recommend, from model_index.json's optional
    /// <c>_focusnfix_sampling</c> object (<c>steps</c>, <c>guidance_scale</c>); null for a setting it does not give.
    /// diffusers ignores keys that start with an underscore, so the folder stays loadable there.
    /// </summary>
    public (int? Steps, double? GuidanceScale) RecommendedSampling
    {
        get
        {
            if (Index.Root["_focusnfix_sampling"] is not System.Text.Json.Nodes.JsonObject o) return (null, null);
            try
            {
                int? steps = o["steps"] is { } s ? s.GetValue<int>() : null;
                double? guidance = o["guidance_scale"] is { } g ? g.GetValue<double>() : null;
                if (steps is < 1) throw new FormatException($"steps {steps} is below 1");
                return (steps, guidance);
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new InvalidInputException($"{System.IO.Path.Combine(Path, "model_index.json")}: _focusnfix_sampling: expected {{\"steps\": integer >= 1, \"guidance_scale\": number}} ({e.Message})");
            }
        }
    }

    /// <summary>The sampling to use: what the user gave, else <see cref="RecommendedSampling"/>, else diffusers' pipeline defaults (50 steps, guidance 7.5).</summary>
    public (int Steps, double GuidanceScale) ResolveSampling(int? steps, double? guidanceScale)
    {
        var recommended = RecommendedSampling;
        return (steps ?? recommended.Steps ?? 50, guidanceScale ?? recommended.GuidanceScale ?? 7.5);
    }
}
