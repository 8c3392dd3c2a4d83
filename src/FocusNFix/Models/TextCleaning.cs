using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.RegularExpressions;

namespace FocusNFix.Models;

/// <summary>
/// The text clean-up that transformers' CLIPTokenizer applies before BPE when ftfy is installed:
/// <c>whitespace_clean(ftfy.fix_text(text)).lower()</c>, reproducing ftfy 6.1.1 with its default
/// <c>TextFixerConfig</c> (HTML unescaping, mojibake repair, C1 controls, ligatures, character width,
/// curly quotes, line breaks, surrogates, terminal escapes, control characters, NFC) and Python's
/// <c>str.lower()</c>. Each step follows ftfy's order and loops until the text stops changing, as ftfy does,
/// because one fix can expose another (<c>&amp;amp;amp;</c> needs two rounds).
/// </summary>
public static partial class TextCleaning
{
    /// <summary>ftfy 6.1.1 <c>fix_text(text)</c> with the default configuration.</summary>
    public static string FixText(string text)
    {
        // ftfy fixes line by line; a literal '<' means real HTML, so entities stay escaped from that line on
        // (ftfy keeps the switched-off config for all later lines too).
        var sb = new StringBuilder(text.Length);
        bool unescapeHtml = true;
        int pos = 0;
        while (pos < text.Length)
        {
            int end = text.IndexOf('\n', pos) + 1;
            if (end == 0) end = text.Length;
            if (end - pos > MaxSegmentLength)
            {
                end = pos + MaxSegmentLength;
                if (char.IsHighSurrogate(text[end - 1])) end--;
            }
            string segment = text[pos..end];
            if (unescapeHtml && segment.Contains('<')) unescapeHtml = false;
            sb.Append(FixSegment(segment, unescapeHtml));
            pos = end;
        }
        return sb.ToString();
    }

    // ftfy's max_decode_length (counted here in UTF-16 units, in code points by Python; only matters past 1M).
    const int MaxSegmentLength = 1_000_000;

    static string FixSegment(string text, bool unescapeHtml)
    {
        while (true)
        {
            string original = text;
            if (unescapeHtml) text = UnescapeHtml(text);
            text = FixEncoding(text);
            text = FixC1Controls(text);
            text = FixLatinLigatures(text);
            text = FixCharacterWidth(text);
            text = UncurlQuotes(text);
            text = FixLineBreaks(text);
            text = FixSurrogates(text);
            text = RemoveTerminalEscapes(text);
            text = RemoveControlChars(text);
            text = text.Normalize(NormalizationForm.FormC);
            if (text == original) return text;
        }
    }

    /// <summary>Whitespace as the <c>regex</c> module's <c>\s</c> sees it (Unicode White_Space).</summary>
    public static bool IsWhitespace(int cp) => cp is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680
        or >= 0x2000 and <= 0x200A or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;

    /// <summary>CLIP's <c>whitespace_clean</c>: runs of whitespace become one space, then Python's <c>strip()</c>.</summary>
    public static string WhitespaceClean(string text)
    {
        var sb = new StringBuilder(text.Length);
        bool inRun = false;
        foreach (char c in text)
        {
            if (IsWhitespace(c)) { if (!inRun) sb.Append(' '); inRun = true; }
            else { sb.Append(c); inRun = false; }
        }
        // str.strip() also strips the information separators U+1C..U+1F, which \s does not match.
        static bool PyStrip(char c) => IsWhitespace(c) || c is >= '\x1C' and <= '\x1F';
        int start = 0, stop = sb.Length;
        while (start < stop && PyStrip(sb[start])) start++;
        while (stop > start && PyStrip(sb[stop - 1])) stop--;
        return sb.ToString(start, stop - start);
    }

    /// <summary>
    /// Python's <c>str.lower()</c>: simple lowercase mappings, plus the two context rules Python applies:
    /// U+0130 becomes "i" + combining dot, and a capital sigma that ends a word becomes final sigma.
    /// </summary>
    public static string PythonLower(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length;)
        {
            var r = Rune.GetRuneAt(text, i);
            if (r.Value == 0x130) sb.Append("i\u0307");
            else if (r.Value == 0x3A3) sb.Append(IsFinalSigma(text, i) ? 'ς' : 'σ');
            else sb.Append(Rune.ToLowerInvariant(r).ToString());
            i += r.Utf16SequenceLength;
        }
        return sb.ToString();
    }

    // Unicode's Final_Sigma: preceded by a cased letter (skipping case-ignorables), not followed by one.
    static bool IsFinalSigma(string s, int at)
    {
        int j = at;
        Rune prev = default;
        bool found = false;
        while (j > 0)
        {
            Rune.DecodeLastFromUtf16(s.AsSpan(0, j), out prev, out int n);
            j -= n;
            if (!IsCaseIgnorable(prev)) { found = true; break; }
        }
        if (!found || !IsCased(prev)) return false;
        for (j = at + 1; j < s.Length;)
        {
            var next = Rune.GetRuneAt(s, j);
            if (!IsCaseIgnorable(next)) return !IsCased(next);
            j += next.Utf16SequenceLength;
        }
        return true;
    }

    static bool IsCased(Rune r)
    {
        var cat = Rune.GetUnicodeCategory(r);
        return cat is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            || Rune.ToLowerInvariant(r) != r || Rune.ToUpperInvariant(r) != r;
    }

    static bool IsCaseIgnorable(Rune r)
    {
        var cat = Rune.GetUnicodeCategory(r);
        return cat is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
                   or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
            || r.Value is '\'' or '.' or ':' or 0xB7 or 0x387 or 0x55F or 0x5F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027
                or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
    }

    // ---------------------------------------------------------------- HTML entities

    static readonly Regex HtmlEntityRe = new("&#?[0-9A-Za-z]{1,24};", RegexOptions.CultureInvariant);

    static readonly Lazy<Dictionary<string, string>> HtmlEntities = new(() =>
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in EntityData.Split(' '))
        {
            int eq = entry.IndexOf('=');
            var value = new StringBuilder();
            foreach (var hex in entry[(eq + 1)..].Split('+'))
                value.Append(char.ConvertFromUtf32(int.Parse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
            map["&" + entry[..eq] + ";"] = value.ToString();
        }
        return map;
    });

    /// <summary>
    /// ftfy's <c>unescape_html</c>: only complete entities that end in ';' are decoded (so "this&amp;not that"
    /// style text is safe); numeric references follow Python's <c>html.unescape</c>.
    /// </summary>
    public static string UnescapeHtml(string text)
    {
        if (!text.Contains('&')) return text;
        return HtmlEntityRe.Replace(text, m =>
        {
            string s = m.Value;
            if (HtmlEntities.Value.TryGetValue(s, out var v)) return v;
            if (s.StartsWith("&#", StringComparison.Ordinal)) return NumericCharRef(s) ?? s;
            return s;
        });
    }

    // html.unescape on "&#...;": a reference it only partly consumes leaves a ';' behind, which ftfy rejects.
    static string? NumericCharRef(string s)
    {
        string body = s[2..^1];
        BigInteger num;
        if (body[0] is 'x' or 'X')
        {
            string digits = body[1..];
            if (digits.Length == 0 || !digits.All(Uri.IsHexDigit)) return null;
            num = BigInteger.Parse("0" + digits, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }
        else
        {
            if (!body.All(char.IsAsciiDigit)) return null;
            num = BigInteger.Parse(body, CultureInfo.InvariantCulture);
        }
        if (num == 0) return "\uFFFD";
        if (num == 0x0D) return "\r";
        if (num >= 0x80 && num <= 0x9F) return CharmapHighBytes[1][(int)num - 0x80].ToString();
        if (num >= 0xD800 && num <= 0xDFFF || num > 0x10FFFF) return "\uFFFD";
        int cp = (int)num;
        if (cp is >= 0x1 and <= 0x8 or 0xB or >= 0xE and <= 0x1F or 0x7F or >= 0xFDD0 and <= 0xFDEF || (cp & 0xFFFE) == 0xFFFE)
            return "";
        return char.ConvertFromUtf32(cp);
    }

    // ---------------------------------------------------------------- simple fixes

    /// <summary>C1 controls U+0080..U+009F read as their Windows-1252 characters (undefined ones stay).</summary>
    public static string FixC1Controls(string text) => MapChars(text, c => c is >= '\u0080' and <= '\u009F' ? CharmapHighBytes[1][c - 0x80] : c);

    static readonly Dictionary<char, string> Ligatures = new()
    {
        ['Ĳ'] = "IJ", ['ĳ'] = "ij", ['ŉ'] = "ʼn", ['Ǳ'] = "DZ", ['ǲ'] = "Dz", ['ǳ'] = "dz", ['Ǆ'] = "DŽ", ['ǅ'] = "Dž",
        ['ǆ'] = "dž", ['Ǉ'] = "LJ", ['ǈ'] = "Lj", ['ǉ'] = "lj", ['Ǌ'] = "NJ", ['ǋ'] = "Nj", ['ǌ'] = "nj",
        ['ﬀ'] = "ff", ['ﬁ'] = "fi", ['ﬂ'] = "fl", ['ﬃ'] = "ffi", ['ﬄ'] = "ffl", ['ﬅ'] = "ſt", ['ﬆ'] = "st",
    };

    public static string FixLatinLigatures(string text) => Translate(text, Ligatures);

    // U+3000 and the halfwidth/fullwidth forms U+FF01..U+FFEF that NFKC changes.
    static readonly Dictionary<char, string> WidthMap = BuildWidthMap();

    static Dictionary<char, string> BuildWidthMap()
    {
        var map = new Dictionary<char, string> { ['\u3000'] = " " };
        for (char c = '\uFF01'; c < '\uFFF0'; c++)
        {
            string s = c.ToString(), alt = s.Normalize(NormalizationForm.FormKC);
            if (alt != s) map[c] = alt;
        }
        return map;
    }

    public static string FixCharacterWidth(string text) => Translate(text, WidthMap);

    public static string UncurlQuotes(string text) => MapChars(text, c => c switch
    {
        '\u02BC' or >= '\u2018' and <= '\u201B' => '\'',
        >= '\u201C' and <= '\u201F' => '"',
        _ => c,
    });

    public static string FixLineBreaks(string text) =>
        text.Replace("\r\n", "\n").Replace('\r', '\n').Replace('\u2028', '\n').Replace('\u2029', '\n').Replace('\u0085', '\n');

    /// <summary>Lone UTF-16 surrogates become U+FFFD (paired ones are already whole characters in .NET).</summary>
    public static string FixSurrogates(string text)
    {
        char[]? chars = null;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            if (char.IsSurrogate(c)) (chars ??= text.ToCharArray())[i] = '\uFFFD';
        }
        return chars is null ? text : new string(chars);
    }

    /// <summary>Removes ANSI escapes <c>ESC [ (digits|;)* letter</c> (Python's <c>\d</c>: any decimal digit).</summary>
    public static string RemoveTerminalEscapes(string text)
    {
        if (!text.Contains('\x1B')) return text;
        var sb = new StringBuilder(text.Length);
        int i = 0;
        while (i < text.Length)
        {
            if (text[i] == '\x1B' && i + 1 < text.Length && text[i + 1] == '[')
            {
                int j = i + 2;
                while (j < text.Length)
                {
                    var r = Rune.GetRuneAt(text, j);
                    if (r.Value != ';' && Rune.GetUnicodeCategory(r) != UnicodeCategory.DecimalDigitNumber) break;
                    j += r.Utf16SequenceLength;
                }
                if (j < text.Length && char.IsAsciiLetter(text[j])) { i = j + 1; continue; }
            }
            sb.Append(text[i++]);
        }
        return sb.ToString();
    }

    public static string RemoveControlChars(string text)
    {
        static bool Drop(char c) => c is <= '\x08' or '\x0B' or >= '\x0E' and <= '\x1F' or '\x7F'
            or >= '\u206A' and <= '\u206F' or '\uFEFF' or >= '\uFFF9' and <= '\uFFFC';
        if (!text.Any(Drop)) return text;
        var sb = new StringBuilder(text.Length);
        foreach (char c in text) if (!Drop(c)) sb.Append(c);
        return sb.ToString();
    }

    static string MapChars(string text, Func<char, char> map)
    {
        char[]? chars = null;
        for (int i = 0; i < text.Length; i++)
        {
            char m = map(text[i]);
            if (m != text[i]) (chars ??= text.ToCharArray())[i] = m;
        }
        return chars is null ? text : new string(chars);
    }

    static string Translate(string text, Dictionary<char, string> table)
    {
        StringBuilder? sb = null;
        for (int i = 0; i < text.Length; i++)
        {
            if (table.TryGetValue(text[i], out var rep))
            {
                sb ??= new StringBuilder(text.Length).Append(text, 0, i);
                sb.Append(rep);
            }
            else sb?.Append(text[i]);
        }
        return sb?.ToString() ?? text;
    }

    // ---------------------------------------------------------------- mojibake (ftfy.fix_encoding)

    /// <summary>
    /// ftfy's <c>fix_encoding</c>: when the text looks like mojibake (<see cref="IsBad"/>), re-encode it in
    /// each single-byte encoding ftfy knows (in its order) and decode the bytes as UTF-8; the first success wins.
    /// Repeated until nothing changes, because mojibake can be stacked.
    /// </summary>
    public static string FixEncoding(string text)
    {
        while (true)
        {
            string previous = text;
            text = FixEncodingOneStep(text);
            if (text == previous) return text;
        }
    }

    const int Latin1 = 0, SloppyWindows1252 = 1;
    static readonly bool[] IsSloppy = [false, true, true, true, true, true, false, false, false];

    static string FixEncodingOneStep(string text)
    {
        if (text.Length == 0 || text.All(c => c < 0x80) || !IsBad(text)) return text;

        bool latin1Possible = false;
        for (int enc = 0; enc < CharmapHighBytes.Length; enc++)
        {
            byte[]? bytes = EncodeCharmap(text, enc);
            if (bytes is null) continue;
            if (enc == Latin1) latin1Possible = true;
            if (AlteredUtf8Re.IsMatch(Latin1String(bytes))) bytes = RestoreByteA0(bytes);
            if (IsSloppy[enc]) bytes = ReplaceLossySequences(bytes);
            bool variants = Array.IndexOf(bytes, (byte)0xED) >= 0 || Array.IndexOf(bytes, (byte)0xC0) >= 0;
            string? fixedText = DecodeUtf8(bytes, variants);
            if (fixedText is not null) return fixedText;
        }

        if (Utf8DetectorRe.IsMatch(text))
        {
            string fixedText = DecodeInconsistentUtf8(text);
            if (fixedText != text) return fixedText;
        }

        // ftfy 6.1.1 tests for "windows-1252" in a list that only ever holds "sloppy-windows-1252", so this
        // branch always tries strict Windows-1252 (which rejects 0x81, 0x8D, 0x8F, 0x90 and 0x9D).
        if (latin1Possible && !text.Any(c => c is '\u0081' or '\u008D' or '\u008F' or '\u0090' or '\u009D'))
        {
            string fixedText = FixC1Controls(text);
            if (fixedText != text) return fixedText;
        }
        if (text.Any(c => c is >= '\u0080' and <= '\u009F')) return FixC1Controls(text);
        return text;
    }

    static readonly Lazy<Dictionary<char, byte>[]> CharmapEncoders = new(BuildCharmapEncoders);

    static Dictionary<char, byte>[] BuildCharmapEncoders() => CharmapHighBytes.Select(table =>
    {
        var map = new Dictionary<char, byte>();
        for (int i = 0; i < 128; i++) map[table[i]] = (byte)(0x80 + i);
        map[table[128]] = 0x1A;
        return map;
    }).ToArray();

    static byte[]? EncodeCharmap(string text, int enc)
    {
        var map = CharmapEncoders.Value[enc];
        var bytes = new byte[text.Length];
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c < 0x80 && c != 0x1A) bytes[i] = (byte)c;
            else if (map.TryGetValue(c, out byte b)) bytes[i] = b;
            else return null;
        }
        return bytes;
    }

    // Byte-level regexes run on a string with one char per byte.
    static string Latin1String(byte[] bytes) => string.Create(bytes.Length, bytes, (span, b) => { for (int i = 0; i < b.Length; i++) span[i] = (char)b[i]; });
    static byte[] Latin1Bytes(string s) => s.Select(c => (byte)c).ToArray();

    static readonly Regex AlteredUtf8Re = new(
        @"[\xC2\xC3\xC5\xCE\xD0\xD9] |[\xE2\xE3] [\x80-\x84\x86-\x9F\xA1-\xBF]|[\xE0-\xE3][\x80-\x84\x86-\x9F\xA1-\xBF] " +
        @"|\xF0 [\x80-\xBF][\x80-\xBF]|\xF0[\x80-\xBF] [\x80-\xBF]|\xF0[\x80-\xBF][\x80-\xBF] ", RegexOptions.CultureInvariant);
    static readonly Regex AGraveWordRe = new(@"\xC3 (?! |quele|quela|quilo|s )", RegexOptions.CultureInvariant);
    static readonly Regex LossyUtf8Re = new(
        @"[\xC2-\xDF]\x1A|[\xC2-\xC3]\?|\xED[\xA0-\xAF][\x1A?]\xED[\xB0-\xBF][\x1A?\x80-\xBF]" +
        @"|\xED[\xA0-\xAF][\x1A?\x80-\xBF]\xED[\xB0-\xBF][\x1A?]|[\xE0-\xEF][\x1A?][\x1A\x80-\xBF]|[\xE0-\xEF][\x1A\x80-\xBF][\x1A?]" +
        @"|[\xF0-\xF4][\x1A?][\x1A\x80-\xBF][\x1A\x80-\xBF]|[\xF0-\xF4][\x1A\x80-\xBF][\x1A?][\x1A\x80-\xBF]" +
        @"|[\xF0-\xF4][\x1A\x80-\xBF][\x1A\x80-\xBF][\x1A?]|\x1A", RegexOptions.CultureInvariant);

    /// <summary>A 0x20 that was once 0xA0 (a non-breaking space inside a UTF-8 sequence) is put back.</summary>
    static byte[] RestoreByteA0(byte[] bytes)
    {
        string s = AGraveWordRe.Replace(Latin1String(bytes), "\u00C3\u00A0 ");
        s = AlteredUtf8Re.Replace(s, m => m.Value.Replace(' ', '\u00A0'));
        return Latin1Bytes(s);
    }

    /// <summary>UTF-8 sequences with bytes lost to '?' or 0x1A (a sloppy codec's U+FFFD) become U+FFFD.</summary>
    static byte[] ReplaceLossySequences(byte[] bytes) =>
        Latin1Bytes(LossyUtf8Re.Replace(Latin1String(bytes), "\u00EF\u00BF\u00BD"));

    /// <summary>
    /// Strict UTF-8 as Python decodes it (null on any error). <paramref name="variants"/> adds ftfy's
    /// "utf-8-variants": Java's C0 80 null and CESU-8 surrogate pairs.
    /// </summary>
    static string? DecodeUtf8(byte[] b, bool variants)
    {
        var sb = new StringBuilder(b.Length);
        int i = 0, n = b.Length;
        while (i < n)
        {
            int c = b[i];
            if (c < 0x80) { sb.Append((char)c); i++; continue; }
            if (variants && c == 0xC0 && i + 1 < n && b[i + 1] == 0x80) { sb.Append('\0'); i += 2; continue; }
            if (variants && c == 0xED && i + 5 < n && b[i + 1] is >= 0xA0 and <= 0xAF && b[i + 2] is >= 0x80 and <= 0xBF
                && b[i + 3] == 0xED && b[i + 4] is >= 0xB0 and <= 0xBF && b[i + 5] is >= 0x80 and <= 0xBF)
            {
                int cp = ((b[i + 1] & 0x0F) << 16) + ((b[i + 2] & 0x3F) << 10) + ((b[i + 4] & 0x0F) << 6) + (b[i + 5] & 0x3F) + 0x10000;
                sb.Append(char.ConvertFromUtf32(cp));
                i += 6;
                continue;
            }
            int len, min2 = 0x80, max2 = 0xBF, value;
            if (c is >= 0xC2 and <= 0xDF) { len = 2; value = c & 0x1F; }
            else if (c is >= 0xE0 and <= 0xEF)
            {
                len = 3; value = c & 0x0F;
                if (c == 0xE0) min2 = 0xA0; else if (c == 0xED) max2 = 0x9F;
            }
            else if (c is >= 0xF0 and <= 0xF4)
            {
                len = 4; value = c & 0x07;
                if (c == 0xF0) min2 = 0x90; else if (c == 0xF4) max2 = 0x8F;
            }
            else return null;
            if (i + len > n) return null;
            for (int k = 1; k < len; k++)
            {
                int cont = b[i + k];
                if (k == 1 ? cont < min2 || cont > max2 : cont is < 0x80 or > 0xBF) return null;
                value = (value << 6) | (cont & 0x3F);
            }
            sb.Append(char.ConvertFromUtf32(value));
            i += len;
        }
        return sb.ToString();
    }

    /// <summary>Fixes UTF-8 mojibake embedded in otherwise good text, one detected run at a time.</summary>
    static string DecodeInconsistentUtf8(string text) => Utf8DetectorRe.Replace(text, m =>
        m.Length < text.Length && IsBad(m.Value) ? FixEncoding(m.Value) : m.Value);

    // ftfy.badness.MOJIBAKE_CATEGORIES: characters that show up when UTF-8 is decoded in the wrong encoding.
    const string Common = "\u00A0\u00AD\u00B7\u00B4\u2013\u2014\u2015\u2026\u2019";
    const string C1 = "\u0080-\u009F";
    const string Bad = "\u00A6\u00A4\u00A8\u00AC\u00AF\u00B6\u00A7\u00B8\u0192\u02C6\u02C7\u02D8\u02DB\u02DC\u2020\u2021\u2030\u2310\u25CA\uFFFD\u00AA\u00BA";
    const string Currency = "\u00A2\u00A3\u00A5\u20A7\u20AC";
    const string StartPunct = "\u00A1\u00AB\u00BF\u00A9\u0384\u0385\u2018\u201A\u201C\u201E\u2022\u2039\uF8FF";
    const string EndPunct = "\u00AE\u00BB\u02DD\u201D\u203A\u2122";
    const string Numeric = "\u00B2\u00B3\u00B9\u00B1\u00BC\u00BD\u00BE\u00D7\u00B5\u00F7\u2044\u2202\u2206\u220F\u2211\u221A\u221E\u2229\u222B\u2248\u2260\u2261\u2264\u2265\u2116";
    const string Kaomoji = "\u00D2-\u00D6\u00D9-\u00DC\u00F2-\u00F6\u00F8-\u00FC\u0150\u00B0";
    const string UpperAccented = "\u00C0-\u00D1\u00D8\u00DC\u00DD\u0102\u0104\u0106\u010C\u010E\u0110\u0118\u011A\u011E\u0130\u0139\u013D\u0141\u0143\u0147\u0152\u0158\u015A\u015E\u0160\u0162\u0164\u016E\u0170\u0178\u0179\u017B\u017D\u0490";
    const string LowerAccented = "\u00DF\u00E0-\u00F1\u0103\u0105\u0107\u010D\u010F\u0111\u0119\u011B\u011F\u013A\u013E\u0142\u0153\u0155\u015B\u015F\u0161\u0165\u00FC\u017A\u017C\u017E\u0491\uFB01\uFB02";
    const string UpperCommon = "\u00DE\u0391-\u03A9\u0386\u0388\u0389\u038A\u038C\u038E\u038F\u03AA\u03AB\u0401-\u042F";
    const string LowerCommon = "\u03B1-\u03C9\u03AC\u03AD\u03AE\u03AF\u03B0\u0430-\u045F";
    const string Box = "\u2502\u250C\u2510\u2518\u251C\u2524\u252C\u253C\u2550-\u256C\u2580\u2584\u2588\u258C\u2590\u2591\u2592\u2593";

    // Python's \s and \w for str patterns (.NET's differ at the edges).
    const string PyWhitespaceClass = "[\t\n\v\f\r\x1C-\x1F \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
    const string PyWordClass = @"[\p{L}\p{N}_]";

    static string Set(params string[] parts) => "[" + string.Concat(parts) + "]";

    // ftfy.badness.BADNESS_RE, alternative by alternative.
    static readonly Regex BadnessRe = new(string.Join("|",
        Set(C1),
        Set(Bad, LowerAccented, UpperAccented, Box, StartPunct, EndPunct, Currency, Numeric) + Set(Bad),
        "[a-zA-Z]" + Set(LowerCommon, UpperCommon) + Set(Bad),
        Set(Bad) + Set(LowerAccented, UpperAccented, Box, StartPunct, EndPunct, Currency, Numeric),
        Set(LowerAccented, LowerCommon, Box, EndPunct, Currency, Numeric) + Set(UpperAccented),
        Set(Box, EndPunct, Currency, Numeric) + Set(LowerAccented),
        Set(LowerAccented, Box, EndPunct) + Set(Currency),
        PyWhitespaceClass + Set(UpperAccented) + Set(Currency),
        Set(UpperAccented, Box) + Set(Numeric),
        Set(LowerAccented, UpperAccented, Box, Currency, EndPunct) + Set(StartPunct) + Set(Numeric),
        Set(LowerAccented, UpperAccented, Currency, Numeric, Box) + Set(EndPunct) + Set(StartPunct),
        Set(Currency, Numeric, Box) + Set(StartPunct),
        "[a-z]" + Set(UpperAccented) + Set(StartPunct, Currency),
        Set(Box) + Set(Kaomoji),
        Set(LowerAccented, UpperAccented, Currency, Numeric, StartPunct, EndPunct) + Set(Box),
        Set(Box) + Set(EndPunct),
        Set(LowerAccented, UpperAccented) + Set(EndPunct) + PyWordClass,
        "[Œœ][^A-Za-z]",
        "[ÂÃÎÐ]" + Set("€Šš¢£Ÿž\u00A0\u00AD®©°·»", StartPunct, EndPunct, "–—´"),
        "×[²³]",
        Set("ØÙ") + Set(Common, Currency, Bad, Numeric, StartPunct, "ŸŠ®°µ»") + Set("ØÙ") + Set(Common, Currency, Bad, Numeric, StartPunct, "ŸŠ®°µ»"),
        "à[²µ¹¼½¾]",
        "√[±∂†≠®™´≤≥¥µø]",
        "≈[°¢]",
        "‚Ä[ìîïòôúùû†°¢π]",
        "‚[âó][àä°ê]",
        "вЂ",
        "[ВГРС]" + Set(C1, Bad, StartPunct, EndPunct, Currency, "°µ") + "[ВГРС]",
        "ГўВЂВ.[A-Za-z ]",
        "Ã[\u00A0¡]",
        "[a-z]" + PyWhitespaceClass + "?[ÃÂ][ ]",
        "^[ÃÂ][ ]",
        Set("a-z.,?!", EndPunct) + "Â" + Set(" ", StartPunct, EndPunct),
        "β€[™\u00A0Ά\u00AD®°]",
        "[ΒΓΞΟ]" + Set(C1, Bad, StartPunct, EndPunct, Currency, "°") + "[ΒΓΞΟ]"), RegexOptions.CultureInvariant);

    /// <summary>ftfy's <c>is_bad</c>: does the text contain a character sequence typical of mojibake?</summary>
    public static bool IsBad(string text) => BadnessRe.IsMatch(text);

    // ftfy.chardata.UTF8_CLUES: what UTF-8 lead and continuation bytes look like in the single-byte encodings.
    const string Utf8FirstOf2 = "ÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßĂĆČĎĐĘĚĞİĹŃŇŐŘŞŢŮŰ" +
        "ΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩΪΫάέήίВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ";
    const string Utf8FirstOf3 = "àáâãäåæçèéêëìíîïăćčďęěĺŕΰαβγδεζηθικλμνξοабвгдежзийклмноп";
    const string Utf8FirstOf4 = "ðóđğπσру";
    const string Utf8ContinuationStrict = "\u0080-\u00BF" + "ĄąĽľŁłŒœŚśŞşŠšŤťŸŹźŻżŽžƒˆˇ˘˛˜˝΄΅" +
        "ΆΈΉΊΌΎΏЁЂЃЄЅІЇЈЉЊЋЌЎЏёђѓєѕіїјљњћќўџҐґ" + "†‡•‰‹›€№™";
    const string Utf8Continuation = Utf8ContinuationStrict + "–—―‘’‚“”„…" + " ";

    static readonly Regex Utf8DetectorRe = new(
        "(?<!" + Set(Utf8ContinuationStrict) + ")(?:" +
        Set(Utf8FirstOf2) + Set(Utf8Continuation) + "|" +
        Set(Utf8FirstOf3) + Set(Utf8Continuation) + "{2}|" +
        Set(Utf8FirstOf4) + Set(Utf8Continuation) + "{3})+", RegexOptions.CultureInvariant);
}
