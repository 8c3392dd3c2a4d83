using System.Buffers.Binary;
using System.Text;
using FocusNFix.Training;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

public class TensorBoardLogTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-tb-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Crc32CMatchesTheStandardCheckValue() =>
        Assert.Equal(0xE3069283u, TensorBoardLog.Crc32C(Encoding.ASCII.GetBytes("123456789")));

    string WriteSample()
    {
        using var tb = new TensorBoardLog(Path.Combine(_dir, "tb"));
        tb.Scalar("train/loss", 0.25, 3);
        tb.Scalar("train/lr", 1e-3, 3);
        using (var scope = NewDisposeScope()) tb.Images("train/samples", rand(3, 3, 4, 4), 3);
        tb.Hyperparameters("{\"seed\": 7}", 0);
        return tb.FilePath;
    }

    [Fact]
    public void EveryRecordIsFramedAndStampedInUnixSeconds()
    {
        var path = WriteSample();
        double now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        // Walk the framing by hand: u64 length, u32 masked CRC of the length, payload, u32 masked CRC of the payload.
        var bytes = File.ReadAllBytes(path);
        int at = 0, records = 0;
        while (at < bytes.Length)
        {
            int len = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            Assert.Equal(Masked(TensorBoardLog.Crc32C(bytes.AsSpan(at, 8))), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8)));
            Assert.Equal(Masked(TensorBoardLog.Crc32C(bytes.AsSpan(at + 12, len))), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + len)));
            var e = Tensorboard.Event.Parser.ParseFrom(bytes.AsSpan(at + 12, len).ToArray());
            Assert.True(Math.Abs(e.WallTime - now) < 60, $"record {records}: wall_time {e.WallTime} is not within a minute of {now}");
            at += 16 + len;
            records++;
        }
        Assert.Equal(5, records);

        var events = TensorBoardLog.ReadEvents(path);
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        var loss = events[1].Summary.Value.Single();
        Assert.Equal(("train/loss", 0.25f, 3L), (loss.Tag, loss.SimpleValue, events[1].Step));
        Assert.Equal(1e-3f, events[2].Summary.Value.Single().SimpleValue);
        var image = events[3].Summary.Value.Single().Image;
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, image.EncodedImageString.Span[..4].ToArray());
        Assert.Equal((8, 8), (image.Height, image.Width)); // 3 images in a 2x2 grid of 4x4 tiles
        var text = events[4].Summary.Value.Single();
        Assert.Equal("config", text.Tag);
        Assert.Equal("text", text.Metadata.PluginData.PluginName);
        Assert.Equal(Tensorboard.DataType.DtString, text.Tensor.Dtype);
        Assert.Contains("\"seed\": 7", text.Tensor.StringVal.Single().ToStringUtf8());
    }

    [Fact]
    public void ReaderRefusesACorruptRecord()
    {
        var path = WriteSample();
        var bytes = File.ReadAllBytes(path);
        bytes[^3] ^= 0x40;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidInputException>(() => TensorBoardLog.ReadEvents(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("checksum mismatch", e.Message);
    }

    static uint Masked(uint crc) => ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
