using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using FocusNFix.IO;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.IO;

/// <summary>
/// Seeded mutants of a small valid file: each must either load exactly the tensors whose bytes it holds, or be
/// refused with an InvalidInputException naming the file; never another exception, never a large allocation.
/// </summary>
public class SafetensorsFuzzTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-stfuzz-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    const int Mutants = 400;
    static readonly string[] DTypeChoices = { "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "f32", "" };
    static readonly string[] NumberChoices = { "0", "1", "-1", "4.0", "1e2", "\"8\"", "null", "9223372036854775807", "9223372036854775808", "4611686018427387904" };

    byte[] BaseFile()
    {
        var p = Path.Combine(_dir, "base.safetensors");
        using (var scope = NewDisposeScope())
        {
            Safetensors.Save(p, new Dictionary<string, Tensor>
            {
                ["a"] = arange(6, dtype: float32).reshape(2, 3),
                ["b"] = tensor(new float[] { 1.5f, -2f, 0.25f, 7f }).to(float16),
                ["c"] = tensor(new long[] { 3, -9 }),
                ["e"] = zeros(3, 0),
                ["u"] = arange(5, dtype: ScalarType.Byte),
            }, new Dictionary<string, string> { ["format"] = "pt" });
        }
        return File.ReadAllBytes(p);
    }

    static (string Header, byte[] Data) Split(byte[] file)
    {
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        return (Encoding.UTF8.GetString(file, 8, n), file[(8 + n)..]);
    }

    static byte[] Join(string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        return bytes;
    }

    /// <summary>Replaces one random match of a regex group in the header text (header length kept consistent).</summary>
    static byte[] EditHeader(byte[] file, Random rng, string pattern, Func<string, string> replace)
    {
        var (header, data) = Split(file);
        var groups = Regex.Matches(header, pattern).SelectMany(m => m.Groups.Cast<Group>().Skip(1)).Where(g => g.Success).ToList();
        if (groups.Count == 0) return file;
        var g = groups[rng.Next(groups.Count)];
        return Join(header[..g.Index] + replace(g.Value) + header[(g.Index + g.Length)..], data);
    }

    static (byte[] Bytes, string What) Mutate(byte[] file, Random rng, int kind)
    {
        var (header, data) = Split(file);
        int headerEnd = 8 + Encoding.UTF8.GetByteCount(header);
        var b = (byte[])file.Clone();
        switch (kind)
        {
            case 0:
            {
                int at = rng.Next(0, headerEnd);
                b[at] ^= (byte)rng.Next(1, 256);
                return (b, $"header byte {at} flipped");
            }
            case 1:
            {
                if (headerEnd == b.Length) return (b, "no data to flip");
                int at = rng.Next(headerEnd, b.Length);
                b[at] ^= (byte)rng.Next(1, 256);
                return (b, $"data byte {at} flipped");
            }
            case 2:
            {
                int len = rng.Next(0, b.Length);
                return (b[..len], $"truncated to {len}");
            }
            case 3:
            {
                int delta = rng.Next(1, 9) * (rng.Next(2) == 0 ? -1 : 1);
                BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)((long)BinaryPrimitives.ReadUInt64LittleEndian(b) + delta));
                return (b, $"header length {delta:+#;-#}");
            }
            case 4:
            {
                var entries = Regex.Matches(header, "\"[a-z_]+\":\\{[^{}]*\\}").Select(m => m.Value).ToList();
                var fields = Regex.Matches(header, "\"(dtype|shape|data_offsets|format)\":(\"[^\"]*\"|\\[[^\\]]*\\])").Select(m => m.Value).ToList();
                if (rng.Next(2) == 0)
                {
                    var e = entries[rng.Next(entries.Count)];
                    return (Join(header.Replace(e, e + "," + e), data), $"entry duplicated: {e}");
                }
                var f = fields[rng.Next(fields.Count)];
                return (Join(header.Replace(f, f + "," + f), data), $"field duplicated: {f}");
            }
            case 5:
                return (EditHeader(file, rng, "\"data_offsets\":\\[(\\d+),(\\d+)\\]", v => rng.Next(3) == 0
                    ? NumberChoices[rng.Next(NumberChoices.Length)] : (long.Parse(v) + rng.Next(-8, 9)).ToString()), "offset edited");
            case 6:
                return (EditHeader(file, rng, "\"shape\":\\[(\\d+)(?:,(\\d+))?\\]", v => rng.Next(3) == 0
                    ? NumberChoices[rng.Next(NumberChoices.Length)] : Math.Max(0, long.Parse(v) + rng.Next(-3, 4)).ToString()), "shape edited");
            case 7:
                return (EditHeader(file, rng, "\"dtype\":\"([A-Z0-9]+)\"", _ => DTypeChoices[rng.Next(DTypeChoices.Length)]), "dtype edited");
            case 8:
            {
                var extra = new byte[rng.Next(1, 17)];
                rng.NextBytes(extra);
                return ([.. b, .. extra], $"{extra.Length} bytes appended");
            }
            default:
            {
                // A header edit (which keeps the file well-framed) followed by a byte-level one.
                var (once, w1) = Mutate(file, rng, rng.Next(4, 8));
                var (twice, w2) = Mutate(once, rng, new[] { 0, 1, 2, 3, 8 }[rng.Next(5)]);
                return (twice, w1 + " then " + w2);
            }
        }
    }

    [Fact]
    public void EveryMutantLoadsConsistentlyOrIsRefusedNamingTheFile()
    {
        var original = BaseFile();
        var rng = new Random(20250417);
        var sw = Stopwatch.StartNew();
        int loaded = 0, refused = 0;
        for (int i = 0; i < Mutants; i++)
        {
            var (bytes, what) = Mutate(original, rng, i % 10);
            var p = Path.Combine(_dir, $"m{i}.safetensors");
            File.WriteAllBytes(p, bytes);
            using var scope = NewDisposeScope();
            Dictionary<string, Tensor> tensors;
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { tensors = Safetensors.Load(p); }
            catch (InvalidInputException e)
            {
                Assert.True(e.Message.Contains(p), $"mutant {i} ({what}): message lacks the path: {e.Message}");
                refused++;
                continue;
            }
            catch (Exception e)
            {
                Assert.Fail($"mutant {i} ({what}): {e.GetType().Name}: {e.Message}");
                return;
            }
            finally
            {
                // Managed allocations stay proportional to the file (the constant covers parsing and messages).
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                Assert.True(allocated < 8L * bytes.Length + (256 << 10), $"mutant {i} ({what}): {allocated} bytes allocated for a {bytes.Length}-byte file");
            }
            loaded++;
            CheckAgainstFile(p, bytes, tensors, $"mutant {i} ({what})");
        }
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"fuzzing took {sw.Elapsed}");
        // Both outcomes must occur, or the mutants test nothing.
        Assert.True(loaded >= 20 && refused >= 200, $"loaded {loaded}, refused {refused}");
    }

    /// <summary>Each loaded tensor holds exactly the bytes at its declared offsets, the tensors tile the data, and a re-save reloads equal.</summary>
    void CheckAgainstFile(string path, byte[] file, Dictionary<string, Tensor> tensors, string what)
    {
        var (entries, _, dataStart) = Safetensors.ReadHeader(path);
        Assert.Equal(entries.Select(e => e.Name).OrderBy(n => n, StringComparer.Ordinal), tensors.Keys.OrderBy(n => n, StringComparer.Ordinal));
        Assert.True(entries.Sum(e => e.End - e.Begin) == file.Length - dataStart, $"{what}: tensors do not cover the data section");
        foreach (var e in entries)
        {
            var t = tensors[e.Name];
            Assert.Equal(e.Shape, t.shape);
            Assert.Equal(e.DType, Safetensors.DTypeName(t.dtype));
            var expected = file[(int)(dataStart + e.Begin)..(int)(dataStart + e.End)];
            var actual = t.numel() == 0 ? Array.Empty<byte>() : t.bytes.ToArray();
            Assert.True(expected.SequenceEqual(actual), $"{what}: tensor '{e.Name}' does not hold the bytes at its offsets");
        }
        var resaved = Path.Combine(_dir, "resaved.safetensors");
        Safetensors.Save(resaved, tensors);
        var again = Safetensors.Load(resaved);
        foreach (var (name, t) in tensors)
            Assert.True((t.numel() == 0 ? Array.Empty<byte>() : t.bytes.ToArray()).SequenceEqual(again[name].numel() == 0 ? Array.Empty<byte>() : again[name].bytes.ToArray()), $"{what}: '{name}' changed on re-save");
    }
}
