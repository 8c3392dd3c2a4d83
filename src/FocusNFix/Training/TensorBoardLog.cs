using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using Tensorboard;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>
/// A TensorBoard event file for a training run: scalars, image grids and text. Written by our own record writer
/// (TorchSharp's generated Event protos, TFRecord framing) because TorchSharp 0.107's SummaryWriter stamps the
/// file_version record with .NET ticks, the others with 0 unless given a float32 wall time, which cannot hold
/// today's Unix seconds to better than about two minutes. Every record here carries wall_time in Unix seconds (double).
/// </summary>
public sealed class TensorBoardLog : IDisposable
{
    static int _uid;
    readonly FileStream _stream;
    readonly object _lock = new();
    public string Folder { get; }
    /// <summary>The event file this log appends to.</summary>
    public string FilePath { get; }

    public TensorBoardLog(string folder)
    {
        Directory.CreateDirectory(folder);
        Folder = folder;
        // TensorBoard's own naming: events.out.tfevents.<unix seconds>.<host>.<pid>.<n>; readers sort files by name.
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        FilePath = Path.Combine(folder, $"events.out.tfevents.{now}.{Environment.MachineName}.{Environment.ProcessId}.{Interlocked.Increment(ref _uid)}");
        _stream = new FileStream(FilePath, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        Write(new Event { FileVersion = "brain.Event:2" });
    }

    /// <summary>Seconds since the Unix epoch, the unit of Event.wall_time.</summary>
    public static double UnixNow() => (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks / (double)TimeSpan.TicksPerSecond;

    public void Scalar(string tag, double value, int step)
    {
        var summary = new Summary();
        summary.Value.Add(new Summary.Types.Value { Tag = tag, SimpleValue = (float)value });
        Write(new Event { Step = step, Summary = summary });
    }

    /// <summary>A grid of images [B,3,H,W] in [0,1].</summary>
    public void Images(string tag, Tensor images, int step)
    {
        using var scope = NewDisposeScope();
        long b = images.shape[0], h = images.shape[2], w = images.shape[3];
        int cols = (int)Math.Ceiling(Math.Sqrt(b));
        int rows = (int)Math.Ceiling(b / (double)cols);
        var grid = zeros(3, rows * h, cols * w);
        for (int i = 0; i < b; i++)
            grid[.., TensorIndex.Slice(i / cols * h, (i / cols + 1) * h), TensorIndex.Slice(i % cols * w, (i % cols + 1) * w)] = images[i].detach().cpu().to(float32);
        Write(new Event { Step = step, Summary = torch.utils.tensorboard.Summary.image(tag, grid.clamp(0, 1), dataformats: "CHW") });
    }

    /// <summary>
    /// Text for TensorBoard's text plugin (rendered as Markdown): a string tensor summary whose metadata names the
    /// plugin "text", as PyTorch's add_text writes it.
    /// </summary>
    public void Text(string tag, string markdown, int step)
    {
        var tensor = new TensorProto { Dtype = DataType.DtString, TensorShape = new TensorShapeProto() };
        tensor.TensorShape.Dim.Add(new TensorShapeProto.Types.Dim { Size = 1 });
        tensor.StringVal.Add(ByteString.CopyFromUtf8(markdown));
        var summary = new Summary();
        summary.Value.Add(new Summary.Types.Value
        {
            Tag = tag, Tensor = tensor,
            Metadata = new SummaryMetadata { PluginData = new SummaryMetadata.Types.PluginData { PluginName = "text" } },
        });
        Write(new Event { Step = step, Summary = summary });
    }

    /// <summary>The run's resolved configuration as JSON in a code block, logged once per run.</summary>
    public void Hyperparameters(string json, int step) => Text("config", "```json\n" + json + "\n```", step);

    void Write(Event e)
    {
        e.WallTime = UnixNow();
        var data = e.ToByteArray();
        // TFRecord framing: length, masked CRC32C of the length, payload, masked CRC32C of the payload.
        var record = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(record, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(8), MaskedCrc(record.AsSpan(0, 8)));
        data.CopyTo(record, 12);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(12 + data.Length), MaskedCrc(data));
        lock (_lock)
        {
            _stream.Write(record);
            // Flushed per record so a killed run keeps everything logged so far.
            _stream.Flush();
        }
    }

    /// <summary>Reads an event file back, checking each record's framing and both checksums.</summary>
    public static List<Event> ReadEvents(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var events = new List<Event>();
        int at = 0;
        while (at < bytes.Length)
        {
            if (bytes.Length - at < 12) throw new InvalidInputException($"{path}: truncated record header at byte {at}");
            ulong len = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)) != MaskedCrc(bytes.AsSpan(at, 8)))
                throw new InvalidInputException($"{path}: length checksum mismatch at byte {at}");
            if (len > (ulong)(bytes.Length - at - 16)) throw new InvalidInputException($"{path}: record at byte {at} runs past the end of the file");
            var data = bytes.AsSpan(at + 12, (int)len);
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)len)) != MaskedCrc(data))
                throw new InvalidInputException($"{path}: data checksum mismatch in the record at byte {at}");
            // The byte[] overload: TorchSharp's generated protos predate span-based parsing.
            try { events.Add(Event.Parser.ParseFrom(data.ToArray())); }
            catch (InvalidProtocolBufferException e) { throw new InvalidInputException($"{path}: the record at byte {at} is not an Event: {e.Message}"); }
            at += 16 + (int)len;
        }
        return events;
    }

    /// <summary>
    /// Rewrites an event file without the records of step <paramref name="step"/> and later (a resumed run logs them
    /// again). A record cut short at the end of the file (the run was killed mid-write) is dropped; any other damage
    /// is an error.
    /// </summary>
    public static void DropFromStep(string path, long step)
    {
        var bytes = File.ReadAllBytes(path);
        using var kept = new MemoryStream();
        int at = 0;
        while (bytes.Length - at >= 12)
        {
            ulong len = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)) != MaskedCrc(bytes.AsSpan(at, 8)))
                throw new InvalidInputException($"{path}: length checksum mismatch at byte {at}");
            if (len > (ulong)(bytes.Length - at - 16)) break;
            var data = bytes.AsSpan(at + 12, (int)len);
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)len)) != MaskedCrc(data))
                throw new InvalidInputException($"{path}: data checksum mismatch in the record at byte {at}");
            Event e;
            try { e = Event.Parser.ParseFrom(data.ToArray()); }
            catch (InvalidProtocolBufferException x) { throw new InvalidInputException($"{path}: the record at byte {at} is not an Event: {x.Message}"); }
            if (e.Step < step) kept.Write(bytes, at, 16 + (int)len);
            at += 16 + (int)len;
        }
        FocusNFix.IO.AtomicFile.WriteAllBytes(path, kept.ToArray());
    }

    static readonly uint[] CrcTable = BuildCrcTable();

    static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        return table;
    }

    /// <summary>CRC-32C (Castagnoli), the checksum of TFRecord files.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        uint c = Crc32C(data);
        return ((c >> 15) | (c << 17)) + 0xa282ead8u;
    }

    public void Dispose()
    {
        lock (_lock) _stream.Dispose();
    }
}
