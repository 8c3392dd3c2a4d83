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

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
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
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        using var fs = File.OpenRead(path);
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

        JsonDocument doc;
        try { doc = JsonDocument.Parse(headerBytes); }
        catch (JsonException e) { throw Bad(path, $"header is not well-formed JSON: {e.Message}"); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "header JSON is not an object");

        var entries = new List<SafetensorsEntry>();
        var metadata = new Dictionary<string, string>();
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad(path, "__metadata__ is not an object");
                foreach (var m in prop.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                continue;
            }
            var v = prop.Value;
            if (v.ValueKind != JsonValueKind.Object
                || !v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String
                || !v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array
                || !v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
                throw Bad(path, $"tensor '{prop.Name}': entry must have dtype, shape and data_offsets [begin, end]");
            string dtype = dt.GetString()!;
            if (!DTypes.TryGetValue(dtype, out var info))
                throw Bad(path, $"tensor '{prop.Name}': unsupported dtype '{dtype}' (expected one of {string.Join(", ", DTypes.Keys)})");
            var shape = new long[sh.GetArrayLength()];
            int i = 0;
            foreach (var d in sh.EnumerateArray())
            {
                if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                    throw Bad(path, $"tensor '{prop.Name}': shape must be non-negative integers");
                shape[i++] = dim;
            }
            if (!off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
                throw Bad(path, $"tensor '{prop.Name}': data_offsets must be integers with 0 <= begin <= end");
            if (end > dataLen)
                throw Bad(path, $"tensor '{prop.Name}': data_offsets [{begin}, {end}] lie outside the data section ({dataLen} bytes; truncated?)");
            long count = 1;
            foreach (var d in shape)
            {
                count = checked(count * d);
                if (count > dataLen) break; // the size check below fails anyway; avoid overflow
            }
            long expectedBytes = count > dataLen ? long.MaxValue : count * info.Size;
            if (expectedBytes != end - begin)
                throw Bad(path, $"tensor '{prop.Name}': {dtype} [{string.Join(", ", shape)}] needs {(count > dataLen ? "more than the file's" : expectedBytes.ToString())} bytes but data_offsets span {end - begin}");
            entries.Add(new SafetensorsEntry(prop.Name, dtype, shape, begin, end));
        }
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        for (int k = 1; k < sorted.Count; k++)
            if (sorted[k].Begin < sorted[k - 1].End)
                throw Bad(path, $"tensors '{sorted[k - 1].Name}' and '{sorted[k].Name}' have overlapping data_offsets");
        return (entries, metadata, dataStart);
    }

    /// <summary>Loads every tensor of a file (validated first) onto the CPU, in its stored dtype.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        using var fs = File.OpenRead(path);
        var (entries, _, dataStart) = ReadHeader(fs, path);
        var result = new Dictionary<string, Tensor>();
        foreach (var e in entries)
        {
            var (type, _) = DTypes[e.DType];
            var bytes = new byte[e.End - e.Begin];
            fs.Seek(dataStart + e.Begin, SeekOrigin.Begin);
            fs.ReadExactly(bytes);
            var t = empty(e.Shape, type);
            if (bytes.Length > 0) t.bytes = bytes;
            result[e.Name] = t;
        }
        return result;
    }

    /// <summary>
    /// Writes tensors as safetensors (keys sorted, 8-byte aligned header, little-endian data),
    /// atomically: to a temporary file first, then renamed over the target.
    /// </summary>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var blobs = new List<byte[]>();
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
                using var cpu = t.detach().cpu().contiguous();
                var bytes = cpu.numel() == 0 ? Array.Empty<byte>() : cpu.bytes.ToArray();
                blobs.Add(bytes);
                w.WriteStartObject(name);
                w.WriteString("dtype", DTypeName(t.dtype));
                w.WriteStartArray("shape");
                foreach (var d in t.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes.Length;
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
            foreach (var b in blobs) stream.Write(b);
        });
    }

    static InvalidInputException Bad(string path, string problem) => new($"{path}: invalid safetensors file: {problem}");
}

/// <summary>Writes files through a temporary file and a rename, so a crash never leaves a half-written output.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                write(fs);
                fs.Flush(true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteAllText(string path, string text) => Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, s => s.Write(bytes));
}
