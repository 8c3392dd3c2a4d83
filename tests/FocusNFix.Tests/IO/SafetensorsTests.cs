using System.Buffers.Binary;
using System.Text;
using FocusNFix.IO;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.IO;

public class SafetensorsTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-st-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    static byte[] RawFile(string headerJson, int dataBytes)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        return bytes;
    }

    string Write(string name, byte[] bytes) { var p = Path.Combine(_dir, name); File.WriteAllBytes(p, bytes); return p; }

    [Fact]
    public void RoundTripsEveryDtypeExactly()
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = randn(3, 4),
            ["f16"] = randn(2, 5).to(float16),
            ["bf16"] = randn(7).to(bfloat16),
            ["f64"] = randn(2, 2, 2, dtype: float64),
            ["i64"] = arange(10, dtype: int64).reshape(2, 5),
            ["u8"] = arange(200, dtype: ScalarType.Byte),
            ["scalar"] = tensor(3.5f),
            ["empty"] = zeros(0, 3),
        };
        var path = Path.Combine(_dir, "rt.safetensors");
        Safetensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var (_, meta, _) = Safetensors.ReadHeader(path);
        Assert.Equal("pt", meta["format"]);
        var back = Safetensors.Load(path);
        Assert.Equal(tensors.Keys.OrderBy(k => k), back.Keys.OrderBy(k => k));
        foreach (var (k, t) in tensors)
        {
            Assert.Equal(t.dtype, back[k].dtype);
            Assert.Equal(t.shape, back[k].shape);
            Assert.True(t.eq(back[k]).all().item<bool>(), k);
        }
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void ReadsGoldenFileWithInt64AndScalars()
    {
        var inputs = Golden.Inputs("unet_tiny_sd15");
        Assert.Equal(int64, inputs["timestep"].dtype);
        Assert.Equal(new long[] { 10, 500 }, inputs["timestep"].data<long>().ToArray());
        Assert.Empty(inputs["timestep_scalar"].shape);
        Assert.Equal(999L, inputs["timestep_scalar"].item<long>());
    }

    [Fact]
    public void RefusesTruncatedFile()
    {
        var good = Path.Combine(_dir, "good.safetensors");
        Safetensors.Save(good, new Dictionary<string, Tensor> { ["w"] = ones(16) });
        var bytes = File.ReadAllBytes(good);
        var p = Write("trunc.safetensors", bytes[..^10]);
        var e = Assert.Throws<InvalidInputException>(() => Safetensors.Load(p));
        Assert.Contains("trunc.safetensors", e.Message);
        Assert.Contains("'w'", e.Message);
        var tiny = Write("tiny.safetensors", new byte[] { 1, 2, 3 });
        Assert.Contains("shorter than the 8-byte", Assert.Throws<InvalidInputException>(() => Safetensors.Load(tiny)).Message);
    }

    [Fact]
    public void RefusesHeaderLengthPastEnd()
    {
        var bytes = RawFile("{}", 0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1UL << 40);
        var p = Write("hdr.safetensors", bytes);
        var e = Assert.Throws<InvalidInputException>(() => Safetensors.Load(p));
        Assert.Contains("header length", e.Message);
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void RefusesMalformedJson()
    {
        var p = Write("json.safetensors", RawFile("{\"a\": [", 0));
        Assert.Contains("not well-formed JSON", Assert.Throws<InvalidInputException>(() => Safetensors.Load(p)).Message);
    }

    [Fact]
    public void RefusesOverlappingOffsets()
    {
        var p = Write("overlap.safetensors", RawFile(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12));
        var e = Assert.Throws<InvalidInputException>(() => Safetensors.Load(p));
        Assert.Contains("overlapping", e.Message);
        Assert.Contains("'a'", e.Message);
        Assert.Contains("'b'", e.Message);
    }

    [Fact]
    public void RefusesSizeMismatchWithoutAllocating()
    {
        var p = Write("size.safetensors", RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8));
        Assert.Contains("needs 12 bytes but data_offsets span 8", Assert.Throws<InvalidInputException>(() => Safetensors.Load(p)).Message);
        // A huge shape must be refused from the header, never allocated.
        var huge = Write("huge.safetensors", RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[100000,100000,100000],\"data_offsets\":[0,8]}}", 8));
        Assert.Contains("'a'", Assert.Throws<InvalidInputException>(() => Safetensors.Load(huge)).Message);
    }

    [Fact]
    public void RefusesUnknownDtype()
    {
        var p = Write("dt.safetensors", RawFile("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 8));
        Assert.Contains("unsupported dtype 'F8_E4M3'", Assert.Throws<InvalidInputException>(() => Safetensors.Load(p)).Message);
    }
}
