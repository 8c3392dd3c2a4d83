using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace FocusNFix.Training;

/// <summary>
/// JSON-lines logs (a run's log.jsonl): one object per line, keys in snake_case, numbers as JSON numbers and
/// non-finite numbers as null (JSON has no NaN; a "NaN" string breaks every generic reader), and first a
/// <c>time</c> field: the UTC time the line was written, ISO-8601 with milliseconds (e.g. "2025-04-17T09:30:12.345Z").
/// </summary>
public static class JsonlLog
{
    public const string TimeKey = "time";

    static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new FiniteOrNullDouble() },
    };

    /// <summary>One line (no newline) for <paramref name="record"/>'s public properties, written at <paramref name="time"/>.</summary>
    public static string Line<T>(T record, DateTimeOffset time)
    {
        using var body = JsonSerializer.SerializeToDocument(record, Options);
        if (body.RootElement.ValueKind != JsonValueKind.Object) throw new ArgumentException($"a log record must serialise to a JSON object, not {body.RootElement.ValueKind}");
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString(TimeKey, time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture));
            foreach (var p in body.RootElement.EnumerateObject())
            {
                if (p.NameEquals(TimeKey)) throw new ArgumentException($"a log record cannot have its own '{TimeKey}' property");
                p.WriteTo(w);
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Appends one line for <paramref name="record"/>, stamped with the current time.</summary>
    public static void Append<T>(string path, T record) => File.AppendAllText(path, Line(record, DateTimeOffset.UtcNow) + "\n");

    /// <summary>Reads every non-empty line as <typeparamref name="T"/>; null numbers read back as NaN. Errors name the file and line.</summary>
    public static List<T> Read<T>(string path)
    {
        var rows = new List<T>();
        int lineNo = 0;
        foreach (var line in IO.InputFile.ReadLines(path, "log file"))
        {
            lineNo++;
            if (line.Trim().Length == 0) continue;
            try
            {
                rows.Add(JsonSerializer.Deserialize<T>(line, Options) ?? throw new JsonException("the line is null"));
            }
            catch (JsonException e)
            {
                throw new InvalidInputException($"{path}: line {lineNo}: expected a JSON object of a {typeof(T).Name}: {e.Message}");
            }
        }
        return rows;
    }

    /// <summary>Writes NaN/Inf as null and reads null back as NaN; also accepts the "NaN"/"Infinity" strings of older logs.</summary>
    sealed class FiniteOrNullDouble : JsonConverter<double>
    {
        public override bool HandleNull => true;

        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
        {
            JsonTokenType.Null => double.NaN,
            JsonTokenType.Number => reader.GetDouble(),
            JsonTokenType.String => reader.GetString() switch
            {
                "NaN" => double.NaN, "Infinity" => double.PositiveInfinity, "-Infinity" => double.NegativeInfinity,
                var s => throw new JsonException($"expected a number or null, found the string \"{s}\""),
            },
            var t => throw new JsonException($"expected a number or null, found {t}"),
        };

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
        {
            if (double.IsFinite(value)) writer.WriteNumberValue(value);
            else writer.WriteNullValue();
        }
    }
}
