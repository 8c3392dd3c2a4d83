using System.Text.Json.Nodes;
using FocusNFix.IO;

namespace FocusNFix.Schedulers;

/// <summary>Builds schedulers from diffusers scheduler configs, by <c>_class_name</c> or by CLI name.</summary>
public static class SchedulerFactory
{
    static readonly Dictionary<string, Func<JsonConfig, IScheduler>> ByClass = new()
    {
        ["DDIMScheduler"] = c => new DdimScheduler(c),
        ["DDPMScheduler"] = c => new DdpmScheduler(c),
        ["EulerDiscreteScheduler"] = c => new EulerDiscreteScheduler(c),
        ["EulerAncestralDiscreteScheduler"] = c => new EulerAncestralDiscreteScheduler(c),
        ["DPMSolverMultistepScheduler"] = c => new DpmSolverMultistepScheduler(c),
        ["PNDMScheduler"] = c => new PndmScheduler(c),
    };

    /// <summary>CLI name -> (class, config keys the name itself fixes).</summary>
    static readonly Dictionary<string, (string Class, (string Key, JsonNode Value)[] Overrides)> ByCliName = new()
    {
        ["ddim"] = ("DDIMScheduler", []),
        ["ddpm"] = ("DDPMScheduler", []),
        ["euler"] = ("EulerDiscreteScheduler", []),
        ["euler-a"] = ("EulerAncestralDiscreteScheduler", []),
        ["dpmpp-2m"] = ("DPMSolverMultistepScheduler", [("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", false)]),
        ["dpmpp-2m-karras"] = ("DPMSolverMultistepScheduler", [("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", true)]),
        ["pndm"] = ("PNDMScheduler", []),
    };

    public static IReadOnlyList<string> Names { get; } = ByCliName.Keys.ToArray();

    /// <summary>Loads <c>scheduler_config.json</c> from a scheduler folder (or a pipeline folder's <c>scheduler/</c>), or the given file.</summary>
    public static IScheduler Load(string schedulerFolderOrConfigFile)
    {
        var path = schedulerFolderOrConfigFile;
        if (Directory.Exists(path))
        {
            var direct = Path.Combine(path, "scheduler_config.json");
            var nested = Path.Combine(path, "scheduler", "scheduler_config.json");
            path = File.Exists(direct) ? direct : File.Exists(nested) ? nested
                : throw new InvalidInputException($"{schedulerFolderOrConfigFile}: no scheduler_config.json in this folder or in its scheduler/ subfolder");
        }
        return FromConfig(JsonConfig.Load(path));
    }

    /// <summary>Dispatches on <c>_class_name</c>.</summary>
    public static IScheduler FromConfig(JsonConfig config)
    {
        var name = config.String("_class_name")
            ?? throw new InvalidInputException($"{config.Source}: '_class_name' is missing; expected one of {string.Join(", ", ByClass.Keys)}");
        return ByClass.TryGetValue(name, out var make) ? make(config)
            : throw new InvalidInputException($"{config.Source}: '_class_name' = '{name}' is not a supported scheduler; expected one of {string.Join(", ", ByClass.Keys)}");
    }

    /// <summary>
    /// diffusers' <c>from_config</c>: keep the pipeline's config (each class reads only the keys it knows,
    /// defaults for the rest) and switch the class. So Euler from SD's DDIM config inherits
    /// timestep_spacing "leading" and steps_offset 1.
    /// </summary>
    /// <summary>Refuses a name <see cref="Create"/> does not know, before any model is loaded.</summary>
    public static void CheckName(string cliName)
    {
        if (!ByCliName.ContainsKey(cliName.ToLowerInvariant()))
            throw new InvalidInputException($"unknown scheduler '{cliName}'; expected one of {string.Join(", ", Names)}");
    }

    public static IScheduler Create(string cliName, JsonConfig baseConfig)
    {
        CheckName(cliName);
        var entry = ByCliName[cliName.ToLowerInvariant()];
        var root = (JsonObject)baseConfig.Root.DeepClone();
        root["_class_name"] = entry.Class;
        foreach (var (key, value) in entry.Overrides) root[key] = value.DeepClone();
        return FromConfig(new JsonConfig(root, $"{baseConfig.Source} (as {entry.Class})"));
    }
}
