namespace FocusNFix.IO;

/// <summary>Finds a component's weight file in a diffusers/transformers folder; only safetensors are accepted.</summary>
public static class WeightFiles
{
    static readonly string[] PickleExtensions = { ".bin", ".ckpt", ".pt", ".pth", ".pkl" };

    /// <summary>
    /// Returns <c>{folder}/{baseName}.safetensors</c>. A pickled checkpoint in its place is refused, because
    /// unpickling runs arbitrary code; the message says how to convert it.
    /// </summary>
    public static string Find(string folder, string baseName)
    {
        InputFile.RequireFolder(folder, "component folder");
        var st = Path.Combine(folder, baseName + ".safetensors");
        // Anything at that name (a FIFO, a link loop) is the user's weight file and gets its own error when opened.
        if (InputFile.KindOf(st) != PathKind.Missing) return st;
        var pickled = Directory.EnumerateFiles(folder)
            .FirstOrDefault(f => PickleExtensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase));
        if (pickled != null) throw PickleRefused(pickled);
        var others = Directory.EnumerateFiles(folder, "*.safetensors").Select(Path.GetFileName).ToList();
        throw new InvalidInputException($"{folder}: weight file '{baseName}.safetensors' not found" +
            (others.Count > 0 ? $" (found: {string.Join(", ", others)})" : ""));
    }

    public static InvalidInputException PickleRefused(string path) => new(
        $"{path}: pickled PyTorch checkpoints are refused, because loading one can run arbitrary code. " +
        "Convert it to safetensors once in Python, e.g. `python -c \"import torch; from safetensors.torch import save_file; " +
        $"save_file(torch.load('{Path.GetFileName(path)}', map_location='cpu'), '{Path.GetFileNameWithoutExtension(path)}.safetensors')\"` " +
        "(for a whole pipeline: `DiffusionPipeline.from_pretrained(dir).save_pretrained(out, safe_serialization=True)`).");

    /// <summary>Refuses a path that names a pickled checkpoint directly.</summary>
    public static void RefusePickle(string path)
    {
        if (PickleExtensions.Contains(Path.GetExtension(path), StringComparer.OrdinalIgnoreCase)) throw PickleRefused(path);
    }
}
