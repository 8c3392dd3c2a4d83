using System.Text.Json.Nodes;
using FocusNFix.ShapesWorld;

namespace FocusNFix.Tests.ShapesWorld;

/// <summary>The bundled world with short prompt lists, so that sampling a model over a split takes seconds.</summary>
static class TinyWorld
{
    /// <summary>Writes it to <paramref name="path"/> and returns the path.</summary>
    /// <param name="rotRate">Rot's rate (0 gates it off); null keeps it.</param>
    public static string Write(string path, int trainPrompts, int testPrompts, double? rotRate = null)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Golden.Root, "models", "shapesworld", WorldSpec.FileName)))!.AsObject();
        void Keep(string key, int n)
        {
            var list = json["splits"]![key]!.AsArray();
            while (list.Count > n) list.RemoveAt(list.Count - 1);
        }
        Keep("train_prompts", trainPrompts);
        Keep("test_prompts", testPrompts);
        if (rotRate is { } rate) json["defects"]!["rot"]!["rate"] = rate;
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }
}
