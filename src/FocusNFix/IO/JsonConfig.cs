using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FocusNFix.IO;

/// <summary>
/// A diffusers/transformers config.json. Unknown keys are ignored by the readers of a config;
/// the bare <c>-Infinity</c>/<c>Infinity</c>/<c>NaN</c> literals that Python's json module writes
/// (DPMSolverMultistep's <c>lambda_min_clipped</c>) are accepted.
/// </summary>
public sealed class JsonConfig
{
    public JsonObject Root { get; }
    public string Source { get; }

    public JsonConfig(JsonObject root, string source) { Root = root; Source = source; }

    public static JsonConfig Load(string path)
    {
        return Parse(InputFile.ReadAllText(path, "config file"), path);
    }

    public static JsonConfig Parse(string text, string source)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(QuoteNonFiniteLiterals(text), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new InvalidInputException($"{source}: not valid JSON: {e.Message}"); }
        if (node is not JsonObject obj) throw new InvalidInputException($"{source}: expected a JSON object at the top level");
        return new JsonConfig(obj, source);
    }

    /// <summary>Turns bare NaN/Infinity/-Infinity tokens outside strings into strings that <see cref="Double"/> reads back.</summary>
    internal static string QuoteNonFiniteLiterals(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool inString = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < text.Length) sb.Append(text[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; sb.Append(c); continue; }
            foreach (var lit in new[] { "-Infinity", "Infinity", "NaN" })
            {
                if (string.CompareOrdinal(text, i, lit, 0, lit.Length) == 0)
                {
                    sb.Append('"').Append(lit).Append('"');
                    i += lit.Length - 1;
                    goto next;
                }
            }
            sb.Append(c);
        next:;
        }
        return sb.ToString();
    }

    public bool Has(string key) => Root.TryGetPropertyValue(key, out var v) && v is not null;

    JsonNode? Get(string key) => Root.TryGetPropertyValue(key, out var v) ? v : null;

    InvalidInputException Wrong(string key, string expected) =>
        new($"{Source}: key '{key}' = {Get(key)?.ToJsonString() ?? "null"}: expected {expected}");

    public string? String(string key, string? fallback = null)
    {
        var v = Get(key);
        if (v is null) return fallback;
        if (v is JsonValue jv && jv.TryGetValue<string>(out var s)) return s;
        throw Wrong(key, "a string");
    }

    public string RequireString(string key) => String(key) ?? throw new InvalidInputException($"{Source}: required key '{key}' is missing");

    public double Double(string key, double fallback)
    {
        var v = Get(key);
        if (v is null) return fallback;
        return ToDouble(v) ?? throw Wrong(key, "a number");
    }

    public double? DoubleOrNull(string key)
    {
        var v = Get(key);
        return v is null ? null : ToDouble(v) ?? throw Wrong(key, "a number");
    }

    static double? ToDouble(JsonNode v)
    {
        if (v is not JsonValue jv) return null;
        // Values built in code (not parsed) hold their CLR type, so read numbers through their JSON text.
        if (jv.GetValueKind() == JsonValueKind.Number)
            return double.Parse(jv.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture);
        if (jv.TryGetValue<string>(out var s))
            return s switch { "NaN" => double.NaN, "Infinity" => double.PositiveInfinity, "-Infinity" => double.NegativeInfinity, _ => null };
        return null;
    }

    public int Int(string key, int fallback)
    {
        var v = Get(key);
        if (v is null) return fallback;
        return ToInt(v) ?? throw Wrong(key, "an integer");
    }

    public int RequireInt(string key) => Has(key) ? Int(key, 0) : throw new InvalidInputException($"{Source}: required key '{key}' is missing");

    static int? ToInt(JsonNode v)
    {
        if (v is JsonValue jv && jv.GetValueKind() == JsonValueKind.Number)
        {
            double d = double.Parse(jv.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture);
            if (d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
        }
        return null;
    }

    public bool Bool(string key, bool fallback)
    {
        var v = Get(key);
        if (v is null) return fallback;
        if (v is JsonValue jv && jv.TryGetValue<bool>(out var b)) return b;
        throw Wrong(key, "true or false");
    }

    /// <summary>An int list; a scalar is repeated <paramref name="count"/> times (diffusers allows both forms).</summary>
    public int[]? IntList(string key, int count = -1)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonArray arr)
            return arr.Select(x => (x is null ? null : ToInt(x)) ?? throw Wrong(key, "a list of integers")).ToArray();
        var single = ToInt(v) ?? throw Wrong(key, "an integer or a list of integers");
        if (count < 0) return new[] { single };
        return Enumerable.Repeat(single, count).ToArray();
    }

    public double[]? DoubleList(string key)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonArray arr)
            return arr.Select(x => (x is null ? null : ToDouble(x)) ?? throw Wrong(key, "a list of numbers")).ToArray();
        throw Wrong(key, "a list of numbers");
    }

    public string[]? StringList(string key)
    {
        var v = Get(key);
        if (v is null) return null;
        if (v is JsonArray arr)
            return arr.Select(x => x is JsonValue jv && jv.TryGetValue<string>(out var s) ? s : throw Wrong(key, "a list of strings")).ToArray();
        throw Wrong(key, "a list of strings");
    }

    /// <summary>A nested object (transformers' CLIPConfig keeps text_config/vision_config inside).</summary>
    public JsonConfig? Child(string key) => Get(key) switch
    {
        null => null,
        JsonObject o => new JsonConfig(o, $"{Source}#{key}"),
        _ => throw Wrong(key, "an object"),
    };
}
