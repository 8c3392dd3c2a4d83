using FocusNFix.IO;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>How a box's four numbers are laid out.</summary>
public enum BoxFormat
{
    /// <summary>[x0, y0, x1, y1]: corners.</summary>
    Xyxy,
    /// <summary>[x, y, width, height]: NudeNet 3's <c>detect()</c> output.</summary>
    Xywh,
}

/// <summary>One detection of a <see cref="BoxesSource"/> file.</summary>
public sealed record Detection(double X0, double Y0, double X1, double Y1, double Score, string? Label);

/// <summary>
/// Masks from detector boxes saved in a JSON file, for detectors such as NudeNet. The file maps
/// <c>"{promptIndex}_{seed}"</c> to that image's detections:
/// <code>
/// { "0_42": [ { "box": [x0, y0, x1, y1], "score": 0.91, "label": "FACE_FEMALE" } ],
///   "1_42": [] }
/// </code>
/// "score" defaults to 1 and the label may be written "label" or "class" (NudeNet 3 writes "class" and
/// [x, y, w, h] boxes: use <see cref="BoxFormat.Xywh"/>, and a file from
/// <c>json.dump({f"{i}_{seed}": NudeDetector().detect(path) for ...}, f)</c> loads as is). Coordinates are
/// pixels of the images passed to <see cref="Compute"/>, or fractions of width/height with <c>normalized</c>.
/// A pixel belongs to a box when its centre lies inside. Boxes below <c>minScore</c> or whose label is not in
/// <c>labels</c> (when given) are skipped. The mask is 1 inside kept boxes (their score with
/// <c>weightByScore</c>, the highest where boxes overlap) and 0 elsewhere; an image listed with no boxes gets
/// an empty mask, an image not listed at all is an error.
/// </summary>
public sealed class BoxesSource : IHeatmapSource
{
    readonly Dictionary<string, Detection[]> _entries;

    public string Path { get; }
    public BoxFormat Format { get; }
    public bool Normalized { get; }
    public double MinScore { get; }
    public IReadOnlySet<string>? Labels { get; }
    public bool WeightByScore { get; }

    public BoxesSource(string path, BoxFormat format = BoxFormat.Xyxy, bool normalized = false, double minScore = 0.0,
        IEnumerable<string>? labels = null, bool weightByScore = false)
    {
        Path = path;
        Format = format;
        Normalized = normalized;
        MinScore = minScore;
        Labels = labels?.ToHashSet(StringComparer.Ordinal);
        WeightByScore = weightByScore;
        _entries = Parse(InputFile.ReadAllText(path, "boxes file"));
    }

    /// <summary>All detections of an image before filtering, or null when the file does not list it.</summary>
    public IReadOnlyList<Detection>? DetectionsFor(HeatmapKey key) =>
        _entries.TryGetValue(key.Name, out var d) ? d : null;

    Dictionary<string, Detection[]> Parse(string text)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new InvalidInputException($"{Path}: not valid JSON: {e.Message}"); }
        if (root is not JsonObject obj)
            throw new InvalidInputException($"{Path}: expected an object mapping \"<prompt-index>_<seed>\" to a list of boxes");
        var result = new Dictionary<string, Detection[]>(StringComparer.Ordinal);
        foreach (var (key, value) in obj)
        {
            if (value is not JsonArray list)
                throw new InvalidInputException($"{Path}: entry \"{key}\" must be a list of detections, got {value?.ToJsonString() ?? "null"}");
            result[key] = list.Select((d, i) => ParseDetection(d, $"{Path}: entry \"{key}\"[{i}]")).ToArray();
        }
        return result;
    }

    Detection ParseDetection(JsonNode? node, string where)
    {
        if (node is not JsonObject d) throw new InvalidInputException($"{where}: expected an object with \"box\", got {node?.ToJsonString() ?? "null"}");
        if (d["box"] is not JsonArray box || box.Count != 4)
            throw new InvalidInputException($"{where}: \"box\" must be 4 numbers ({(Format == BoxFormat.Xyxy ? "[x0, y0, x1, y1]" : "[x, y, width, height]")})");
        var v = box.Select(n => Number(n, where + " box")).ToArray();
        double score = d["score"] is null ? 1.0 : Number(d["score"], where + " score");
        var labelNode = d["label"] ?? d["class"];
        string? label = labelNode is JsonValue lv && lv.TryGetValue<string>(out var s) ? s : null;
        var (x1, y1) = Format == BoxFormat.Xyxy ? (v[2], v[3]) : (v[0] + v[2], v[1] + v[3]);
        if (x1 < v[0] || y1 < v[1])
            throw new InvalidInputException($"{where}: box [{string.Join(", ", v)}] has negative width or height (is the format {Format} right?)");
        return new Detection(v[0], v[1], x1, y1, score, label);
    }

    static double Number(JsonNode? n, string where) =>
        n is JsonValue jv && jv.TryGetValue<double>(out var x) && double.IsFinite(x) ? x
            : throw new InvalidInputException($"{where}: expected a finite number, got {n?.ToJsonString() ?? "null"}");

    public Tensor Compute(Tensor images, IReadOnlyList<HeatmapKey> keys)
    {
        HeatmapKey.CheckBatch(images, keys, $"boxes file {Path}");
        int h = (int)images.shape[2], w = (int)images.shape[3];
        var data = new float[keys.Count * h * w];
        for (int b = 0; b < keys.Count; b++)
        {
            if (!keys[b].IsIdentified)
                throw new InvalidInputException($"boxes file {Path}: boxes are looked up by prompt index and seed, and this image has none (only images generated from a prompt list have them)");
            var detections = DetectionsFor(keys[b]) ?? throw new InvalidInputException(
                $"{Path}: no entry \"{keys[b].Name}\" for prompt {keys[b].PromptIndex}, seed {keys[b].Seed} " +
                $"(the file has {_entries.Count} entries{(_entries.Count > 0 ? ", e.g. " + string.Join(", ", _entries.Keys.Take(5)) : "")}); " +
                "write [] for an image with no detections");
            foreach (var d in detections)
            {
                if (d.Score < MinScore || (Labels != null && (d.Label == null || !Labels.Contains(d.Label)))) continue;
                double sx = Normalized ? w : 1, sy = Normalized ? h : 1;
                // Pixel j covers [j, j+1); it is inside when its centre j + 0.5 is.
                int c0 = Math.Max(0, (int)Math.Ceiling(d.X0 * sx - 0.5)), c1 = Math.Min(w - 1, (int)Math.Floor(d.X1 * sx - 0.5));
                int r0 = Math.Max(0, (int)Math.Ceiling(d.Y0 * sy - 0.5)), r1 = Math.Min(h - 1, (int)Math.Floor(d.Y1 * sy - 0.5));
                float value = WeightByScore ? (float)Math.Clamp(d.Score, 0, 1) : 1f;
                for (int r = r0; r <= r1; r++)
                    for (int c = c0; c <= c1; c++)
                    {
                        ref float p = ref data[((long)b * h + r) * w + c];
                        p = Math.Max(p, value);
                    }
            }
        }
        return torch.tensor(data, new long[] { keys.Count, 1, h, w }).To(images);
    }

    /// <summary>Nothing to move: the boxes are drawn on the host and handed back on the images' device.</summary>
    public void To(Device device) { }

    public void Dispose() { }
}
