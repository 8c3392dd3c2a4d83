using System.Collections;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FocusNFix.IO;

/// <summary>
/// Reads a settings class from JSON and words System.Text.Json's errors for the person who wrote the file: the key path
/// as written, the value found and what was expected ("train.steps = \"ten\": expected an integer"), where the library
/// says "could not be converted to System.Int32. Path: $.train.steps | LineNumber: 0 | BytePositionInLine: 25". The bare
/// NaN/Infinity literals Python's json module writes are read as numbers, for validation to name them.
/// </summary>
public static class StrictJson
{
    public static T Deserialize<T>(string text, string source, JsonSerializerOptions options) where T : class
    {
        text = JsonConfig.QuoteNonFiniteLiterals(text);
        T? value;
        try { value = JsonSerializer.Deserialize<T>(text, options); }
        catch (JsonException e) { throw new InvalidInputException($"{source}: {Describe(e, text, typeof(T), options)}", e); }
        return value ?? throw new InvalidInputException($"{source}: the file holds null, expected a JSON object");
    }

    static string Describe(JsonException e, string text, Type root, JsonSerializerOptions options)
    {
        JsonNode? doc;
        try { doc = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip }); }
        catch (JsonException syntax) { return $"not valid JSON ({Where(syntax)}: {Core(syntax.Message)})"; }
        var path = (e.Path ?? "$").TrimStart('$').TrimStart('.');
        var unknown = System.Text.RegularExpressions.Regex.Match(e.Message, "The JSON property '(.*?)' could not be mapped");
        if (unknown.Success)
        {
            var name = unknown.Groups[1].Value;
            var section = path.EndsWith(name, StringComparison.Ordinal) ? path[..^name.Length].TrimEnd('.') : path;
            var type = TypeAt(root, section, options);
            var keys = type is null ? "" : $" (expected one of {string.Join(", ", Keys(type, options))})";
            return $"unknown key '{(section.Length > 0 ? section + "." : "")}{name}'{keys}";
        }
        var target = TypeAt(root, path, options);
        var found = Find(doc, path)?.ToJsonString() ?? "null";
        if (found.Length > 60) found = found[..60] + "...";
        if (path.Length == 0) return $"the file holds {found}, expected a JSON object";
        var key = path;
        return target is null ? $"{key}: {Core(e.Message)}" : $"{key} = {found}: expected {Expected(target, options)}";
    }

    static string Where(JsonException e) => $"line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}";

    /// <summary>The message without the location suffix that <see cref="Where"/> states readably.</summary>
    static string Core(string message)
    {
        int cut = message.IndexOf(" Path: ", StringComparison.Ordinal);
        if (cut < 0) cut = message.IndexOf(" LineNumber: ", StringComparison.Ordinal);
        return (cut < 0 ? message : message[..cut]).Trim().TrimEnd('.');
    }

    static string Expected(Type t, JsonSerializerOptions options)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        if (t == typeof(int) || t == typeof(long)) return "an integer";
        if (t == typeof(double) || t == typeof(float)) return "a number";
        if (t == typeof(bool)) return "true or false";
        if (t == typeof(string)) return "a string";
        if (Element(t) is { } element) return "a list of " + Plural(Nullable.GetUnderlyingType(element) ?? element);
        return $"an object with keys {string.Join(", ", Keys(t, options))}";
    }

    static string Plural(Type t) =>
        t == typeof(int) || t == typeof(long) ? "integers" : t == typeof(double) || t == typeof(float) ? "numbers"
        : t == typeof(bool) ? "true/false values" : t == typeof(string) ? "strings" : "objects";

    static Type? Element(Type t) => t.IsArray ? t.GetElementType()
        : t.IsGenericType && typeof(IEnumerable).IsAssignableFrom(t) && t != typeof(string) ? t.GetGenericArguments()[0] : null;

    static IEnumerable<string> Keys(Type t, JsonSerializerOptions options) =>
        Settable(t).Select(p => options.PropertyNamingPolicy?.ConvertName(p.Name) ?? p.Name);

    static IEnumerable<PropertyInfo> Settable(Type t) => t.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite);

    /// <summary>The declared type at a path like "rewards[0].weight", or null when the path leaves the class.</summary>
    static Type? TypeAt(Type root, string path, JsonSerializerOptions options)
    {
        Type? t = root;
        foreach (var segment in Segments(path))
        {
            if (t is null) return null;
            if (segment.StartsWith('[')) { t = Element(t); continue; }
            t = Settable(t).FirstOrDefault(p => (options.PropertyNamingPolicy?.ConvertName(p.Name) ?? p.Name) == segment)?.PropertyType;
        }
        return t;
    }

    static JsonNode? Find(JsonNode? node, string path)
    {
        foreach (var segment in Segments(path))
        {
            node = segment.StartsWith('[')
                ? node is JsonArray a && int.TryParse(segment[1..^1], out int i) && i < a.Count ? a[i] : null
                : node is JsonObject o ? o[segment] : null;
            if (node is null) return null;
        }
        return node;
    }

    static IEnumerable<string> Segments(string path)
    {
        foreach (var dotted in path.Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            int bracket = dotted.IndexOf('[');
            if (bracket != 0) yield return bracket < 0 ? dotted : dotted[..bracket];
            for (int at = bracket; at >= 0 && at < dotted.Length; at = dotted.IndexOf('[', at + 1))
                yield return dotted[at..(dotted.IndexOf(']', at) + 1)];
        }
    }
}
