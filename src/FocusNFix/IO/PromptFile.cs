using System.Text;

namespace FocusNFix.IO;

/// <summary>
/// A prompt file: UTF-8 text (a byte-order mark is allowed), one prompt per line; blank lines and lines starting with
/// '#' are skipped, surrounding whitespace trimmed. Anything else (invalid UTF-8, a NUL byte: a binary file given by
/// mistake, or a UTF-16 export) is refused with the line and byte offset, instead of becoming U+FFFD prompts.
/// </summary>
public static class PromptFile
{
    static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static List<string> Read(string path)
    {
        // Checked by type first: a FIFO or a device given as a prompt file must not hang or stream forever.
        var bytes = InputFile.ReadAllBytes(path, "prompt file");
        int start = bytes.AsSpan().StartsWith(Encoding.UTF8.Preamble) ? Encoding.UTF8.Preamble.Length : 0;
        int nul = Array.IndexOf(bytes, (byte)0, start);
        if (nul >= 0) throw Bad(path, bytes, nul, "a NUL byte");
        string text;
        try { text = Strict.GetString(bytes, start, bytes.Length - start); }
        catch (DecoderFallbackException)
        {
            throw Bad(path, bytes, FirstInvalid(bytes, start), "invalid UTF-8");
        }
        return text.Split('\n', '\r').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
    }

    static InvalidInputException Bad(string path, byte[] bytes, int offset, string what)
    {
        int line = 1 + bytes.AsSpan(0, offset).Count((byte)'\n');
        return new InvalidInputException($"{path}: line {line} (byte offset {offset}): {what}; a prompt file must be UTF-8 text");
    }

    /// <summary>Byte offset of the first invalid UTF-8 sequence (the decoder's exception does not give a reliable one).</summary>
    static int FirstInvalid(byte[] bytes, int start)
    {
        var span = bytes.AsSpan(start);
        int at = 0;
        while (at < span.Length)
        {
            if (System.Text.Rune.DecodeFromUtf8(span[at..], out _, out int used) != System.Buffers.OperationStatus.Done) return start + at;
            at += used;
        }
        return bytes.Length;
    }
}
