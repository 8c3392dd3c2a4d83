using FocusNFix.ShapesWorld;

namespace FocusNFix.WorldModels;

/// <summary>
/// A world folder holds a world.json and the models trained for that world in subfolders (<c>base/</c>,
/// <c>reward-hazard/</c>, <c>reward-glitch/</c>, <c>judge/</c>), as the bundled <c>models/shapesworld</c> does. A model
/// finds its world as the world.json in its folder's parent: the trainer takes a split's prompts from it and
/// <c>fnf eval</c> its oracle.
/// </summary>
public static class WorldFolder
{
    /// <summary>The bundled world folder, relative to the repository root (read, never written, by default).</summary>
    public const string Bundled = "models/shapesworld";

    /// <summary>
    /// Where the <c>fnf world</c> commands write by default: a world folder under runs/, so they never replace the
    /// bundled models unless <c>--out</c> names them.
    /// </summary>
    public const string DefaultOut = "runs/world";

    /// <summary><paramref name="path"/> when given; else the bundled world.json if present (from the repository root); else the built-in default world.</summary>
    public static ShapesWorldBenchmark LoadWorld(string? path)
    {
        if (path != null) return ShapesWorldBenchmark.Load(path);
        var bundled = Path.Combine(Bundled, WorldSpec.FileName);
        return File.Exists(bundled) ? ShapesWorldBenchmark.Load(bundled) : ShapesWorldBenchmark.Default();
    }

    /// <summary>The world.json a model folder belongs to: the one in its parent folder.</summary>
    public static string WorldBeside(string modelDir) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelDir).TrimEnd('/', Path.DirectorySeparatorChar))!, WorldSpec.FileName);

    /// <summary>
    /// Before training a model for <paramref name="world"/> into <paramref name="modelDir"/>: refuses when a different
    /// world.json sits beside it (the model would be read against the wrong world). Returns whether none is there, so
    /// <see cref="WriteWorldBeside"/> must add one.
    /// </summary>
    public static bool CheckWorldBeside(string modelDir, WorldSpec world)
    {
        var path = WorldBeside(modelDir);
        if (!File.Exists(path)) return true;
        if (!WorldSpec.Load(path).Equals(world))
            throw new InvalidInputException($"{path}: a different world is beside the output folder {modelDir}; train with --world {path}, or choose another --out");
        return false;
    }

    /// <summary>Writes the model's world beside its folder when none is there (see <see cref="CheckWorldBeside"/>).</summary>
    public static void WriteWorldBeside(string modelDir, WorldSpec world)
    {
        var path = WorldBeside(modelDir);
        if (!File.Exists(path)) world.Save(path);
    }
}
