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
    public void ForEachHandsOverTheWantedTensorsOneAtATimeWithTheValuesLoadGives()
    {
        var path = Path.Combine(_dir, "each.safetensors");
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["a"] = arange(6f).reshape(2, 3), ["b"] = ones(4), ["c"] = full(2, 7L) });
        var all = Safetensors.Load(path);
        var seen = new List<string>();
        Safetensors.ForEach(path, e => e.Name != "b", (name, t) =>
        {
            using (t)
            {
                Assert.Equal(all[name].shape, t.shape);
                Assert.True(t.eq(all[name]).all().item<bool>());
                Assert.Equal(all[name].dtype, t.dtype);
            }
            seen.Add(name);
        });
        Assert.Equal(new[] { "a", "c" }, seen.Order());
    }

    [Theory]
    [InlineData(12)] // 3 floats a slice, the last slice shorter
    [InlineData(2)] // under one element: one element a slice
    [InlineData(1 << 20)] // the whole tensor at once
    public void ForEachReadsEveryValueWhateverTheSliceSize(long sliceBytes)
    {
        var path = Path.Combine(_dir, "slices.safetensors");
        var values = Enumerable.Range(0, 10).Select(i => i * 1.5f - 4f).ToArray();
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["w"] = tensor(values).reshape(2, 5), ["s"] = tensor(3L), ["h"] = arange(7).to(bfloat16) });
        var got = new Dictionary<string, Tensor>();
        Safetensors.ForEach(path, _ => true, (name, t) => got[name] = t, sliceBytes);
        Assert.Equal(new long[] { 2, 5 }, got["w"].shape);
        Assert.Equal(values, got["w"].data<float>().ToArray());
        Assert.Empty(got["s"].shape);
        Assert.Equal(3L, got["s"].item<long>());
        Assert.Equal(bfloat16, got["h"].dtype);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => (float)i), got["h"].to(float32).data<float>().ToArray());
    }

    [Fact]
    public void ReadIntoFillsAMatchingTensorInPlaceConvertsAnyOtherAndRefusesAnotherShape()
    {
        var path = Path.Combine(_dir, "into.safetensors");
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["a"] = arange(6f).reshape(2, 3), ["b"] = full(3, 2.5f), ["skip"] = ones(2) });
        var a = zeros(2, 3);
        var b = zeros(new long[] { 3 }, float64);
        Safetensors.ReadInto(path, _ => new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b });
        Assert.Equal(new[] { 0f, 1, 2, 3, 4, 5 }, a.data<float>().ToArray());
        Assert.Equal(new[] { 2.5, 2.5, 2.5 }, b.data<double>().ToArray());

        var wrong = zeros(3, 2);
        var ex = Assert.Throws<InvalidInputException>(() => Safetensors.ReadInto(path, _ => new Dictionary<string, Tensor> { ["a"] = wrong }));
        Assert.Contains("'a'", ex.Message);
        Assert.Contains("[2, 3]", ex.Message);
        Assert.Equal(0f, wrong.abs().sum().item<float>());
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
        foreach (var json in new[] { "{\"a\": {\"dtype\": \"F3", "{\"a\": {\"dtype\": tru}", "{,}", "{\"a\" // c\n:{}}", "{} {}" })
        {
            var p = Write("json.safetensors", RawFile(json, 0));
            var e = Assert.Throws<InvalidInputException>(() => Safetensors.Load(p));
            Assert.Contains(p, e.Message);
            Assert.Contains("not well-formed JSON", e.Message);
        }
        Assert.Contains("tensor 'a' is StartArray", Assert.Throws<InvalidInputException>(() => Safetensors.Load(Write("arr.safetensors", RawFile("{\"a\": [", 0)))).Message);
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

    static string Entry(string name, string dtype, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{shape}],\"data_offsets\":[{begin},{end}]}}";

    InvalidInputException Refused(string name, string headerJson, int dataBytes)
    {
        var p = Write(name, RawFile(headerJson, dataBytes));
        var e = Assert.Throws<InvalidInputException>(() => Safetensors.Load(p));
        Assert.Contains(p, e.Message);
        return e;
    }

    [Fact]
    public void RefusesGapBetweenTensors()
    {
        var e = Refused("gap.safetensors", "{" + Entry("a", "F32", "1", 0, 4) + "," + Entry("b", "F32", "1", 8, 12) + "}", 12);
        Assert.Contains("'b' starts at data offset 8", e.Message);
        Assert.Contains("'a' ends at 4", e.Message);
        var lead = Refused("lead.safetensors", "{" + Entry("a", "F32", "1", 4, 8) + "}", 8);
        Assert.Contains("'a' starts at data offset 4", lead.Message);
    }

    [Fact]
    public void RefusesTrailingBytesAndHeaderLengthOffByOne()
    {
        var e = Refused("trail.safetensors", "{" + Entry("a", "F32", "2", 0, 8) + "}", 9);
        Assert.Contains("'a' ends at data offset 8", e.Message);
        Assert.Contains("1 trailing bytes", e.Message);
        Assert.Contains("trailing bytes", Refused("none.safetensors", "{}", 3).Message);

        // A header length one short still parses (the writer pads with spaces) but shifts every tensor by a byte:
        // before, this loaded the weights as garbage without an error.
        var good = Path.Combine(_dir, "good.safetensors");
        Safetensors.Save(good, new Dictionary<string, Tensor> { ["w"] = ones(4) });
        var bytes = File.ReadAllBytes(good);
        Assert.Equal((byte)' ', bytes[8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes) - 1]);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, BinaryPrimitives.ReadUInt64LittleEndian(bytes) - 1);
        var p = Write("short.safetensors", bytes);
        var err = Assert.Throws<InvalidInputException>(() => Safetensors.Load(p));
        Assert.Contains(p, err.Message);
        Assert.Contains("'w'", err.Message);
        Assert.Contains("trailing bytes", err.Message);
    }

    [Fact]
    public void RefusesDuplicateKeys()
    {
        var a = Entry("a", "F32", "1", 0, 4);
        Assert.Contains("key 'a' appears more than once", Refused("dup.safetensors", "{" + a + "," + a + "}", 4).Message);
        Assert.Contains("tensor 'a': field 'dtype' appears more than once",
            Refused("dupf.safetensors", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4).Message);
        Assert.Contains("'__metadata__' key 'k' appears more than once",
            Refused("dupm.safetensors", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}," + a + "}", 4).Message);
        Assert.Contains("'__metadata__' appears more than once",
            Refused("dupmm.safetensors", "{\"__metadata__\":{},\"__metadata__\":{}," + a + "}", 4).Message);
    }

    [Fact]
    public void RefusesInvalidUtf8Header()
    {
        var header = Encoding.UTF8.GetBytes("{\"aX\":{}}");
        header[3] = 0xFF;
        var bytes = new byte[8 + header.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        var p = Write("utf8.safetensors", bytes);
        var e = Assert.Throws<InvalidInputException>(() => Safetensors.Load(p));
        Assert.Contains(p, e.Message);
        Assert.Contains("not valid UTF-8", e.Message);
        Assert.Contains("not valid text", Refused("surrogate.safetensors", "{\"\\ud800\":{}}", 0).Message);
    }

    [Theory]
    [InlineData("0,4.0", "4.0")]
    [InlineData("0,4e0", "4e0")]
    [InlineData("0,\"4\"", "4")]
    [InlineData("-4,0", "-4")]
    [InlineData("0,99999999999999999999", "99999999999999999999")]
    public void RefusesNonIntegerOffsets(string offsets, string shown)
    {
        var e = Refused("off.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" + offsets + "]}}", 4);
        Assert.Contains("tensor 'a': data_offsets contains " + shown, e.Message);
        Assert.Contains("expected non-negative integers", e.Message);
    }

    [Theory]
    [InlineData("-1", "-1")]
    [InlineData("1.5", "1.5")]
    [InlineData("null", "Null")]
    [InlineData("[1]", "StartArray")]
    public void RefusesBadShapes(string dim, string shown) =>
        Assert.Contains("tensor 'a': shape contains " + shown, Refused("shape.safetensors", "{" + Entry("a", "F32", dim, 0, 4) + "}", 4).Message);

    [Fact]
    public void RefusesShapeWhoseSizeOverflows()
    {
        // 2^62 * 4 elements overflow Int64; a wrapped product could otherwise match a small byte count.
        var e = Refused("ovf.safetensors", "{" + Entry("a", "F32", "4611686018427387904,4", 0, 0) + "}", 0);
        Assert.Contains("tensor 'a'", e.Message);
        Assert.Contains("more elements than fit in 64 bits", e.Message);
        // Elements fit but bytes do not (2^62 F32 values).
        Assert.Contains("64 bits", Refused("ovfb.safetensors", "{" + Entry("a", "F32", "4611686018427387904", 0, 0) + "}", 0).Message);
        Assert.Contains("64 bits", Refused("ovfz.safetensors", "{" + Entry("a", "F32", "4611686018427387904,4,0", 0, 0) + "}", 0).Message);
    }

    [Fact]
    public void RefusesNonStringMetadataAndUnknownFields()
    {
        var a = Entry("a", "F32", "1", 0, 4);
        Assert.Contains("'__metadata__' key 'n' is Number (expected a string value)",
            Refused("meta.safetensors", "{\"__metadata__\":{\"n\":3}," + a + "}", 4).Message);
        Assert.Contains("'__metadata__' is StartArray", Refused("metaa.safetensors", "{\"__metadata__\":[]," + a + "}", 4).Message);
        Assert.Contains("tensor 'a': unknown field 'offsets'",
            Refused("field.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"offsets\":[0,4]}}", 4).Message);
        Assert.Contains("tensor 'a': missing data_offsets", Refused("miss.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4).Message);
        Assert.Contains("data_offsets has 3 entries", Refused("three.safetensors", "{" + Entry("a", "F32", "1", 0, 4).Replace("[0,4]", "[0,4,4]") + "}", 4).Message);
        Assert.Contains("end before they begin", Refused("rev.safetensors", "{" + Entry("a", "U8", "0", 4, 0) + "}", 4).Message);
    }

    [Fact]
    public void LoadsEmptyTensorsAnywhere()
    {
        // Empty tensors (begin == end) at the start, between two tensors and at the very end of the data.
        var p = Write("empty.safetensors", RawFile("{\"__metadata__\":null," + Entry("e0", "F32", "3,0", 0, 0) + "," + Entry("a", "U8", "2", 0, 2) + ","
            + Entry("e1", "I64", "0", 2, 2) + "," + Entry("b", "U8", "1", 2, 3) + "," + Entry("e2", "F16", "0,5", 3, 3) + "}", 3));
        var t = Safetensors.Load(p);
        Assert.Equal(new long[] { 3, 0 }, t["e0"].shape);
        Assert.Equal(new long[] { 0 }, t["e1"].shape);
        Assert.Equal(new long[] { 0, 5 }, t["e2"].shape);
        Assert.Equal(float16, t["e2"].dtype);
        Assert.Equal(2, t["a"].numel());
        Assert.Empty(Safetensors.Load(Write("nothing.safetensors", RawFile("{}", 0))));
    }
}
