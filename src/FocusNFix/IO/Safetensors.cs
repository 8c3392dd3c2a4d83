using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.IO;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>
/// Reader and writer for the safetensors format (8-byte little-endian header length, JSON header,
/// raw little-endian data). The reader validates everything before it allocates, so a corrupt or
/// hostile file cannot make it allocate more than the file holds.
/// </summary>
public static class Safetensors
{
    // Guard against absurd headers; the reference implementation uses 100 MB too.
    const long MaxHeaderBytes = 100_000_000;

    internal static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4),
        ["F16"] = (ScalarType.Float16, 2), ["BF16"] = (ScalarType.BFloat16, 2),
        ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1),
        ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

    public static string DTypeName(ScalarType t) => DTypes.FirstOrDefault(kv => kv.Value.Type == t).Key
        ?? throw new ArgumentException($"dtype {t} cannot be stored in safetensors");

    /// <summary>Reads and validates the header only. Returns the entries, the metadata and the data section offset.</summary>
    public static (List<SafetensorsEntry> Entries, Dictionary<string, string> Metadata, long DataStart) ReadHeader(string path)
    {
        using var fs = InputFile.OpenRead(path, "safetensors file");
        return ReadHeader(fs, path);
    }

    static (List<SafetensorsEntry>, Dictionary<string, string>, long) ReadHeader(Stream fs, string path)
    {
        long fileLength = fs.Length;
        if (fileLength < 8) throw Bad(path, $"file is {fileLength} bytes, shorter than the 8-byte header length (truncated?)");
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > (ulong)(fileLength - 8))
            throw Bad(path, $"header length {headerLen} runs past the end of the file ({fileLength} bytes; truncated?)");
        if (headerLen > MaxHeaderBytes) throw Bad(path, $"header length {headerLen} exceeds the {MaxHeaderBytes}-byte limit");
        var headerBytes = new byte[headerLen];
        fs.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLen;
        long dataLen = fileLength - dataStart;

        if (!System.Text.Unicode.Utf8.IsValid(headerBytes)) throw Bad(path, "header is not valid UTF-8 (expected a UTF-8 JSON object)");
        List<SafetensorsEntry> entries;
        Dictionary<string, string> metadata;
        try { (entries, metadata) = SafetensorsHeader.Parse(headerBytes, dataLen, path); }
        catch (JsonException e) { throw Bad(path, $"header is not well-formed JSON: {e.Message}"); }
        // Utf8JsonReader.GetString throws this for escapes that decode to invalid UTF-16 (a lone surrogate).
        catch (InvalidOperationException e) { throw Bad(path, $"header holds a string that is not valid text: {e.Message}"); }
        CheckTiling(entries, dataLen, path);
        return (entries, metadata, dataStart);
    }

    /// <summary>
    /// The tensors must cover the data section exactly, as the reference implementation demands: a gap or trailing
    /// bytes mean the header and the data disagree (a header length off by a few bytes shifts every tensor and
    /// loads garbage, e.g. NaN weights, without any other sign).
    /// </summary>
    static void CheckTiling(List<SafetensorsEntry> entries, long dataLen, string path)
    {
        long cursor = 0;
        SafetensorsEntry? prev = null;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < cursor)
                throw Bad(path, $"tensors '{prev!.Name}' and '{e.Name}' have overlapping data_offsets ([{prev.Begin}, {prev.End}] and [{e.Begin}, {e.End}])");
            if (e.Begin > cursor)
                throw Bad(path, $"tensor '{e.Name}' starts at data offset {e.Begin} but {(prev is null ? "the data section starts at 0" : $"tensor '{prev.Name}' ends at {cursor}")}: " +
                    $"{e.Begin - cursor} bytes belong to no tensor (expected the tensors to tile the data section)");
            cursor = e.End;
            prev = e;
        }
        if (cursor != dataLen)
            throw Bad(path, $"{(prev is null ? "the header lists no tensors" : $"the last tensor '{prev.Name}' ends at data offset {cursor}")} but the data section has {dataLen} bytes: " +
                $"{dataLen - cursor} trailing bytes (header length wrong? expected the tensors to tile the data section)");
    }

    /// <summary>Loads every tensor of a file (validated first) onto the CPU, in its stored dtype.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        var result = new Dictionary<string, Tensor>();
        ForEach(path, _ => true, (name, t) => result[name] = t);
        return result;
    }

    const long DefaultSliceBytes = 64L << 20;

    /// <summary>
    /// Reads the tensors of a file (validated first) one at a time, in file order: <paramref name="use"/> gets each
    /// tensor that <paramref name="wanted"/> accepts (by name, after the header is read) and owns it. A model's
    /// weights can so be copied in and freed one by one, instead of a second copy of the whole file being held.
    /// </summary>
    /// <param name="sliceBytes">The most bytes read in one go: a Span cannot cover more than 2 GB.</param>
    public static void ForEach(string path, Func<SafetensorsEntry, bool> wanted, Action<string, Tensor> use, long sliceBytes = DefaultSliceBytes)
    {
        if (sliceBytes < 1) throw new ArgumentOutOfRangeException(nameof(sliceBytes), sliceBytes, "expected at least 1 byte");
        using var fs = InputFile.OpenRead(path, "safetensors file");
        var (entries, _, dataStart) = ReadHeader(fs, path);
        foreach (var e in entries.Where(wanted))
        {
            var (type, _) = DTypes[e.DType];
            var t = empty(e.Shape, type);
            fs.Seek(dataStart + e.Begin, SeekOrigin.Begin);
            ReadInto(fs, t, sliceBytes);
            use(e.Name, t);
        }
    }

    /// <summary>
    /// Reads the tensors of a file (validated first) into existing tensors: <paramref name="destinations"/> gets the
    /// header's entries before any data is read (it may refuse them by throwing) and returns, by name, the tensor each
    /// entry goes into (entries it leaves out are skipped), which must have the entry's shape. A contiguous CPU
    /// destination of the stored dtype is filled in place; any other (another device or dtype) gets a copy.
    /// </summary>
    public static void ReadInto(string path, Func<IReadOnlyList<SafetensorsEntry>, IReadOnlyDictionary<string, Tensor>> destinations)
    {
        using var fs = InputFile.OpenRead(path, "safetensors file");
        var (entries, _, dataStart) = ReadHeader(fs, path);
        var targets = destinations(entries);
        using var _ = no_grad();
        foreach (var e in entries)
        {
            if (!targets.TryGetValue(e.Name, out var target)) continue;
            if (!target.shape.SequenceEqual(e.Shape))
                throw Bad(path, $"tensor '{e.Name}' has shape [{string.Join(", ", e.Shape)}] but its destination has [{string.Join(", ", target.shape)}]");
            var (type, _) = DTypes[e.DType];
            fs.Seek(dataStart + e.Begin, SeekOrigin.Begin);
            if (target.device_type == DeviceType.CPU && target.dtype == type && target.is_contiguous())
            {
                ReadInto(fs, target, DefaultSliceBytes);
                continue;
            }
            using var stored = empty(e.Shape, type);
            ReadInto(fs, stored, DefaultSliceBytes);
            target.copy_(stored);
        }
    }

    /// <summary>
    /// Reads a fresh CPU tensor's bytes straight into its own memory. Going through a managed array instead costs a
    /// second copy of every weight (3.2 GB through the large-object heap for an SD UNet) and a native buffer of the
    /// same size that malloc then keeps as freed heap.
    /// </summary>
    static void ReadInto(Stream fs, Tensor t, long sliceBytes)
    {
        long count = t.numel();
        if (count == 0) return;
        long perSlice = Math.Max(1, sliceBytes / t.ElementSize);
        using var flat = t.view(-1);
        for (long start = 0; start < count; start += perSlice)
        {
            using var slice = flat.narrow(0, start, Math.Min(perSlice, count - start));
            fs.ReadExactly(slice.bytes);
        }
    }

    /// <summary>
    /// Writes tensors as safetensors (keys sorted, 8-byte aligned header, little-endian data),
    /// atomically: to a temporary file first, then renamed over the target.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        // Sizes come from shape and dtype; the bytes are copied one tensor at a time while writing, so saving a
        // 3.4 GB UNet does not hold a second copy of it.
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var kv in metadata.OrderBy(k => k.Key, StringComparer.Ordinal)) w.WriteString(kv.Key, kv.Value);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var name in names)
            {
                var t = tensors[name];
                long byteCount = t.numel() * t.ElementSize;
                w.WriteStartObject(name);
                w.WriteString("dtype", DTypeName(t.dtype));
                w.WriteStartArray("shape");
                foreach (var d in t.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + byteCount);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += byteCount;
            }
            w.WriteEndObject();
        }
        var header = ms.ToArray().ToList();
        while (header.Count % 8 != 0) header.Add((byte)' ');
        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Count);
            stream.Write(len);
            stream.Write(header.ToArray());
            foreach (var name in names)
            {
                using var cpu = tensors[name].detach().cpu().contiguous();
                if (cpu.numel() > 0) stream.Write(cpu.bytes);
            }
        });
    }

    internal static InvalidInputException Bad(string path, string problem) => new($"{path}: invalid safetensors file: {problem}");
}

/// <summary>
/// Parses a safetensors header token by token (Utf8JsonReader), because a DOM parser silently keeps the last of two
/// equal keys: a duplicated tensor name or field must be an error, not a coin toss.
/// </summary>
static class SafetensorsHeader
{
    const string Expected = "expected {\"dtype\": string, \"shape\": [non-negative integers], \"data_offsets\": [begin, end]}";

    public static (List<SafetensorsEntry>, Dictionary<string, string>) Parse(ReadOnlySpan<byte> header, long dataLen, string path)
    {
        var r = new Utf8JsonReader(header, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 16 });
        Next(ref r);
        if (r.TokenType != JsonTokenType.StartObject) throw Safetensors.Bad(path, $"header JSON is not an object (found {r.TokenType})");
        var entries = new List<SafetensorsEntry>();
        var metadata = new Dictionary<string, string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (true)
        {
            Next(ref r);
            if (r.TokenType == JsonTokenType.EndObject) break;
            string key = r.GetString()!;
            if (!seen.Add(key)) throw Safetensors.Bad(path, $"key '{key}' appears more than once in the header (expected unique tensor names)");
            Next(ref r);
            if (key == "__metadata__") ReadMetadata(ref r, metadata, path);
            else entries.Add(ReadEntry(ref r, key, dataLen, path));
        }
        // Only whitespace (the writers' padding) may follow the object; anything else makes the reader throw.
        if (r.Read()) throw Safetensors.Bad(path, $"unexpected {r.TokenType} after the header object");
        return (entries, metadata);
    }

    /// <summary>Advances; running out of header inside the object is malformed JSON.</summary>
    static void Next(ref Utf8JsonReader r)
    {
        if (!r.Read()) throw new JsonException("the header ends inside the JSON object");
    }

    static void ReadMetadata(ref Utf8JsonReader r, Dictionary<string, string> metadata, string path)
    {
        if (r.TokenType == JsonTokenType.Null) return;
        if (r.TokenType != JsonTokenType.StartObject) throw Safetensors.Bad(path, $"'__metadata__' is {r.TokenType} (expected an object of strings)");
        while (true)
        {
            Next(ref r);
            if (r.TokenType == JsonTokenType.EndObject) return;
            string key = r.GetString()!;
            Next(ref r);
            if (r.TokenType != JsonTokenType.String)
                throw Safetensors.Bad(path, $"'__metadata__' key '{key}' is {r.TokenType} (expected a string value)");
            if (!metadata.TryAdd(key, r.GetString()!))
                throw Safetensors.Bad(path, $"'__metadata__' key '{key}' appears more than once (expected unique keys)");
        }
    }

    static SafetensorsEntry ReadEntry(ref Utf8JsonReader r, string name, long dataLen, string path)
    {
        if (r.TokenType != JsonTokenType.StartObject) throw Safetensors.Bad(path, $"tensor '{name}' is {r.TokenType}; {Expected}");
        string? dtype = null;
        List<long>? shape = null, offsets = null;
        while (true)
        {
            Next(ref r);
            if (r.TokenType == JsonTokenType.EndObject) break;
            string field = r.GetString()!;
            Next(ref r);
            bool duplicate;
            switch (field)
            {
                case "dtype":
                    if (r.TokenType != JsonTokenType.String) throw Safetensors.Bad(path, $"tensor '{name}': dtype is {r.TokenType} (expected a string)");
                    duplicate = dtype != null;
                    dtype = r.GetString()!;
                    break;
                case "shape":
                    duplicate = shape != null;
                    shape = ReadIntegers(ref r, name, field, path);
                    break;
                case "data_offsets":
                    duplicate = offsets != null;
                    offsets = ReadIntegers(ref r, name, field, path);
                    break;
                default:
                    throw Safetensors.Bad(path, $"tensor '{name}': unknown field '{field}'; {Expected}");
            }
            if (duplicate) throw Safetensors.Bad(path, $"tensor '{name}': field '{field}' appears more than once");
        }
        if (dtype == null || shape == null || offsets == null)
            throw Safetensors.Bad(path, $"tensor '{name}': missing {string.Join(" and ", new[] { dtype == null ? "dtype" : null, shape == null ? "shape" : null, offsets == null ? "data_offsets" : null }.OfType<string>())}; {Expected}");
        if (!Safetensors.DTypes.TryGetValue(dtype, out var info))
            throw Safetensors.Bad(path, $"tensor '{name}': unsupported dtype '{dtype}' (expected one of {string.Join(", ", Safetensors.DTypes.Keys)})");
        if (offsets.Count != 2) throw Safetensors.Bad(path, $"tensor '{name}': data_offsets has {offsets.Count} entries (expected [begin, end])");
        long begin = offsets[0], end = offsets[1];
        if (end < begin) throw Safetensors.Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] end before they begin (expected begin <= end)");
        if (end > dataLen)
            throw Safetensors.Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] lie outside the data section ({dataLen} bytes; truncated?)");
        string shapeText = $"{dtype} [{string.Join(", ", shape)}]";
        long bytes;
        try
        {
            // Product of the non-zero dimensions, so an empty tensor with absurd other dimensions is refused too:
            // such a shape cannot be a real tensor and overflows stride arithmetic downstream.
            long count = 1;
            foreach (var d in shape) if (d != 0) count = checked(count * d);
            bytes = shape.Contains(0) ? 0 : checked(count * info.Size);
        }
        catch (OverflowException)
        {
            throw Safetensors.Bad(path, $"tensor '{name}': {shapeText} has more elements than fit in 64 bits (expected a shape matching data_offsets [{begin}, {end}])");
        }
        if (bytes != end - begin)
            throw Safetensors.Bad(path, $"tensor '{name}': {shapeText} needs {bytes} bytes but data_offsets span {end - begin}");
        return new SafetensorsEntry(name, dtype, shape.ToArray(), begin, end);
    }

    /// <summary>A JSON array of non-negative integers that fit in Int64 (no fractions, exponents or strings).</summary>
    static List<long> ReadIntegers(ref Utf8JsonReader r, string name, string field, string path)
    {
        if (r.TokenType != JsonTokenType.StartArray) throw Safetensors.Bad(path, $"tensor '{name}': {field} is {r.TokenType} (expected a list of non-negative integers)");
        var list = new List<long>();
        while (true)
        {
            Next(ref r);
            if (r.TokenType == JsonTokenType.EndArray) return list;
            if (r.TokenType != JsonTokenType.Number || !r.TryGetInt64(out long v) || v < 0)
            {
                string raw = r.TokenType is JsonTokenType.Number or JsonTokenType.String ? Encoding.UTF8.GetString(r.ValueSpan) : r.TokenType.ToString();
                if (raw.Length > 40) raw = raw[..40] + "...";
                throw Safetensors.Bad(path, $"tensor '{name}': {field} contains {raw} (expected non-negative integers)");
            }
            list.Add(v);
        }
    }
}
