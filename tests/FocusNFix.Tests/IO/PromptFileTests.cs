using System.Text;
using FocusNFix.IO;
using Xunit;

namespace FocusNFix.Tests.IO;

public class PromptFileTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-prompts-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    string Write(byte[] bytes)
    {
        var path = Path.Combine(_dir, "prompts.txt");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Utf8WithBomCrLfCommentsAndBlankLinesReadsAsPrompts()
    {
        var path = Write(Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes("# a comment\r\n  a café  \r\n\r\nun été à Zürich\n")).ToArray());
        Assert.Equal(new[] { "a café", "un été à Zürich" }, PromptFile.Read(path));
    }

    [Fact]
    public void InvalidUtf8IsRefusedWithItsLineAndByteOffset()
    {
        // Line 2 holds "caf" then a Latin-1 é (0xE9), which is not UTF-8.
        var bytes = Encoding.ASCII.GetBytes("first\ncaf").Append((byte)0xE9).Concat(Encoding.ASCII.GetBytes("\nlast\n")).ToArray();
        var path = Write(bytes);
        var e = Assert.Throws<InvalidInputException>(() => PromptFile.Read(path));
        Assert.Equal($"{path}: line 2 (byte offset 9): invalid UTF-8; a prompt file must be UTF-8 text", e.Message);
    }

    [Fact]
    public void NulBytesAndUtf16AreRefused()
    {
        var path = Write(Encoding.ASCII.GetBytes("one\ntwo\nthr\0ee\n"));
        Assert.Equal($"{path}: line 3 (byte offset 11): a NUL byte; a prompt file must be UTF-8 text", Assert.Throws<InvalidInputException>(() => PromptFile.Read(path)).Message);
        path = Write(Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes("a prompt\n")).ToArray());
        Assert.Contains("line 1", Assert.Throws<InvalidInputException>(() => PromptFile.Read(path)).Message);
        Assert.Contains("not found", Assert.Throws<InvalidInputException>(() => PromptFile.Read(Path.Combine(_dir, "missing.txt"))).Message);
    }
}
