using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FocusNFix.IO;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>Token ids of one prompt, padded to the tokenizer's MaxLength, and how many content tokens were cut.</summary>
public sealed record TokenizedPrompt(long[] Ids, int TruncatedTokens);

/// <summary>
/// CLIP's byte-level BPE tokenizer, as transformers' slow <c>CLIPTokenizer</c> (with ftfy installed) and
/// openai/CLIP's <c>SimpleTokenizer</c> compute it: added/special tokens are split out of the raw text
/// first, every other piece is cleaned (<see cref="TextCleaning"/>), lower-cased, cut into words by CLIP's
/// pattern, mapped byte-by-byte to printable characters and merged by the ranks in merges.txt.
/// </summary>
public sealed class ClipTokenizer
{
    const string StartOfText = "<|startoftext|>", EndOfText = "<|endoftext|>", EndOfWord = "</w>";
    const int DefaultMaxLength = 77;

    // transformers keeps merges[1 : 49152 - 256 - 2 + 1] of the file: the '#version' line is skipped and the
    // list is cut so that 256 bytes + 256 end-of-word bytes + merges + 2 specials = 49408 ids.
    const int MergeLinesKept = 49152 - 256 - 2;

    readonly Dictionary<string, int> encoder;
    readonly Dictionary<int, string> decoder;
    readonly Dictionary<(string, string), int> bpeRanks;
    readonly string[] addedTokens; // longest first, so a split takes the longest match at each position
    readonly Dictionary<string, int> addedTokenIds;
    readonly int unkId;
    readonly ConcurrentDictionary<string, string[]> cache = new(StringComparer.Ordinal);

    public int MaxLength { get; }
    public long BosId { get; }
    public long EosId { get; }
    public long PadId { get; }
    public string PadToken { get; }
    public int VocabSize => encoder.Count;

    ClipTokenizer(Dictionary<string, int> encoder, Dictionary<(string, string), int> ranks, SpecialTokens special,
                  Dictionary<string, int> addedTokenIds, int maxLength)
    {
        this.encoder = encoder;
        bpeRanks = ranks;
        decoder = new Dictionary<int, string>();
        foreach (var (token, id) in encoder) decoder[id] = token;
        foreach (var (token, id) in addedTokenIds) decoder.TryAdd(id, token);
        this.addedTokenIds = addedTokenIds;
        addedTokens = addedTokenIds.Keys.OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal).ToArray();
        MaxLength = maxLength;
        BosId = addedTokenIds[special.Bos];
        EosId = addedTokenIds[special.Eos];
        PadId = addedTokenIds[special.Pad];
        unkId = addedTokenIds[special.Unk];
        PadToken = special.Pad;
    }

    // ------------------------------------------------------------------ loading

    /// <summary>
    /// Loads a transformers tokenizer folder: vocab.json and merges.txt (required), tokenizer_config.json and
    /// special_tokens_map.json (optional: special tokens, pad token, model_max_length).
    /// </summary>
    public static ClipTokenizer FromFolder(string folder) => FromFolder(folder, padTokenOverride: null);

    /// <summary>
    /// As <see cref="FromFolder(string)"/>, with the pad token replaced, like
    /// <c>CLIPTokenizer.from_pretrained(folder, pad_token=...)</c> (SD2's tokenizer pads with "!").
    /// </summary>
    public static ClipTokenizer FromFolder(string folder, string? padTokenOverride)
    {
        InputFile.RequireFolder(folder, "tokenizer folder");
        string vocabPath = Path.Combine(folder, "vocab.json"), mergesPath = Path.Combine(folder, "merges.txt");
        InputFile.RequireFile(vocabPath, "tokenizer vocabulary (vocab.json)");
        InputFile.RequireFile(mergesPath, "tokenizer merges (merges.txt)");

        var encoder = LoadVocab(vocabPath);
        var ranks = LoadMerges(mergesPath);

        string configPath = Path.Combine(folder, "tokenizer_config.json"), mapPath = Path.Combine(folder, "special_tokens_map.json");
        JsonConfig? config = InputFile.KindOf(configPath) != PathKind.Missing ? JsonConfig.Load(configPath) : null;
        JsonConfig? map = InputFile.KindOf(mapPath) != PathKind.Missing ? JsonConfig.Load(mapPath) : null;

        // Tokens the config declares with their ids (added_tokens_decoder: {"49406": {"content": ...}}).
        var addedIds = new Dictionary<string, int>(StringComparer.Ordinal);
        var declared = config?.Root["added_tokens_decoder"] as JsonObject;
        if (declared is not null)
        {
            foreach (var (key, node) in declared)
            {
                string? content = TokenContent(node);
                if (!int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out int id) || content is null)
                    throw new InvalidInputException($"{configPath}: added_tokens_decoder entry '{key}' needs an integer id and a 'content' string");
                addedIds[content] = id;
            }
        }

        else if (File.Exists(Path.Combine(folder, "added_tokens.json")))
        {
            // Older folders list added tokens as {"token": id} in added_tokens.json.
            var legacy = JsonConfig.Load(Path.Combine(folder, "added_tokens.json"));
            foreach (var (token, node) in legacy.Root)
            {
                if (node is not JsonValue v || !v.TryGetValue<int>(out int id))
                    throw new InvalidInputException($"{legacy.Source}: token '{token}' needs an integer id");
                addedIds[token] = id;
            }
        }

        // transformers: with added_tokens_decoder the config's own values rule; older folders (without it) let
        // special_tokens_map.json override the config.
        var sources = declared is not null ? new[] { config, map } : new[] { map, config };
        string Special(string key, string fallback)
        {
            foreach (var src in sources)
            {
                if (src is null || !src.Root.TryGetPropertyValue(key, out var node) || node is null) continue;
                return TokenContent(node) ?? throw new InvalidInputException(
                    $"{src.Source}: key '{key}' = {node.ToJsonString()}: expected a token string or an object with 'content'");
            }
            return fallback;
        }
        var special = new SpecialTokens(
            Bos: Special("bos_token", StartOfText), Eos: Special("eos_token", EndOfText),
            Unk: Special("unk_token", EndOfText), Pad: padTokenOverride ?? Special("pad_token", EndOfText));

        foreach (var (name, token) in new[] { ("bos_token", special.Bos), ("eos_token", special.Eos), ("unk_token", special.Unk), ("pad_token", special.Pad) })
        {
            if (addedIds.ContainsKey(token)) continue;
            if (!encoder.TryGetValue(token, out int id))
                throw new InvalidInputException($"{folder}: {name} '{token}' is not in vocab.json ({encoder.Count} tokens)");
            addedIds[token] = id;
        }
        foreach (var src in sources)
        {
            if (src?.Root["additional_special_tokens"] is not JsonArray extra) continue;
            foreach (var node in extra)
            {
                string? token = TokenContent(node);
                if (token is null || addedIds.ContainsKey(token)) continue;
                if (!encoder.TryGetValue(token, out int id))
                    throw new InvalidInputException($"{src.Source}: additional special token '{token}' is not in vocab.json");
                addedIds[token] = id;
            }
        }

        int maxLength = DefaultMaxLength;
        if (config is not null && config.Has("model_max_length"))
        {
            double v = config.Double("model_max_length", DefaultMaxLength);
            // transformers writes int(1e30) when no length is known; CLIP's position table is 77 long.
            if (v >= 1e20) v = DefaultMaxLength;
            if (v < 2 || v > 1_000_000 || v != Math.Floor(v))
                throw new InvalidInputException($"{configPath}: model_max_length = {v}: expected an integer between 2 and 1000000 (77 for CLIP)");
            maxLength = (int)v;
        }
        return new ClipTokenizer(encoder, ranks, special, addedIds, maxLength);
    }

    sealed record SpecialTokens(string Bos, string Eos, string Unk, string Pad);

    static string? TokenContent(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o when o["content"] is JsonValue c && c.TryGetValue<string>(out var s) => s,
        _ => null,
    };

    static Dictionary<string, int> LoadVocab(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(InputFile.ReadAllBytes(path, "vocab.json"));
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidInputException($"{path}: expected a JSON object mapping tokens to ids");
            var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                    throw new InvalidInputException($"{path}: token '{p.Name}' has id {p.Value.GetRawText()}: expected a non-negative integer");
                vocab[p.Name] = id;
            }
            if (vocab.Count == 0) throw new InvalidInputException($"{path}: the vocabulary is empty");
            return vocab;
        }
        catch (JsonException e) { throw new InvalidInputException($"{path}: not valid JSON: {e.Message}", e); }
    }

    static Dictionary<(string, string), int> LoadMerges(string path)
    {
        // Python reads it with universal newlines, strips the whole text, splits on '\n', skips the first line.
        string text = InputFile.ReadAllText(path, "merges.txt").Replace("\r\n", "\n").Replace('\r', '\n').Trim();
        var lines = text.Split('\n');
        var ranks = new Dictionary<(string, string), int>();
        int count = Math.Min(lines.Length - 1, MergeLinesKept);
        for (int rank = 0; rank < count; rank++)
        {
            var parts = lines[rank + 1].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2) ranks.TryAdd((parts[0], parts[1]), rank);
        }
        if (ranks.Count == 0) throw new InvalidInputException($"{path}: no merges found (expected a '#version' line, then one 'a b' pair per line)");
        return ranks;
    }

    // ------------------------------------------------------------------ encoding

    /// <summary>bos + BPE ids + eos, neither truncated nor padded (transformers' <c>tokenizer(text).input_ids</c>).</summary>
    public int[] EncodeUnpadded(string text)
    {
        var ids = new List<int> { (int)BosId };
        AppendContentIds(text, ids);
        ids.Add((int)EosId);
        return ids.ToArray();
    }

    /// <summary>
    /// <c>tokenizer(text, padding="max_length", max_length=MaxLength, truncation=True)</c>: content beyond
    /// MaxLength - 2 tokens is cut so that bos and eos always stay, then padding with <see cref="PadId"/>.
    /// </summary>
    public TokenizedPrompt Encode(string text)
    {
        var full = EncodeUnpadded(text);
        int content = full.Length - 2, room = MaxLength - 2;
        int kept = Math.Min(content, room);
        var ids = new long[MaxLength];
        ids[0] = BosId;
        for (int i = 0; i < kept; i++) ids[1 + i] = full[1 + i];
        ids[1 + kept] = EosId;
        for (int i = kept + 2; i < MaxLength; i++) ids[i] = PadId;
        return new TokenizedPrompt(ids, content - kept);
    }

    /// <summary>
    /// Encodes a batch to a [B, MaxLength] int64 tensor. <paramref name="warn"/> is called once per prompt
    /// that had to be truncated, saying how many tokens were dropped and what they were.
    /// </summary>
    public Tensor Tokenize(IReadOnlyList<string> prompts, Action<string>? warn = null)
    {
        var flat = new long[prompts.Count * MaxLength];
        for (int b = 0; b < prompts.Count; b++)
        {
            var enc = Encode(prompts[b]);
            Array.Copy(enc.Ids, 0, flat, b * MaxLength, MaxLength);
            if (enc.TruncatedTokens > 0 && warn is not null)
            {
                var full = EncodeUnpadded(prompts[b]);
                string dropped = Decode(full.Skip(MaxLength - 1).Take(enc.TruncatedTokens).Select(i => (long)i));
                warn($"prompt {b} is too long: {enc.TruncatedTokens} token(s) beyond CLIP's {MaxLength - 2}-token limit were dropped " +
                     $"(prompt \"{Abbreviate(prompts[b], 60)}\"; dropped: \"{Abbreviate(dropped, 80)}\")");
            }
        }
        return tensor(flat, new long[] { prompts.Count, MaxLength }, ScalarType.Int64);
    }

    static string Abbreviate(string s, int max)
    {
        s = TextCleaning.WhitespaceClean(s);
        if (s.Length <= max) return s;
        int cut = char.IsHighSurrogate(s[max - 1]) ? max - 1 : max;
        return s[..cut] + "...";
    }

    /// <summary>The BPE tokens for ids (e.g. "photo&lt;/w&gt;"), as transformers' <c>convert_ids_to_tokens</c>.</summary>
    public string[] ConvertIdsToTokens(IEnumerable<long> ids) => ids.Select(TokenOf).ToArray();

    string TokenOf(long id) => id >= int.MinValue && id <= int.MaxValue && decoder.TryGetValue((int)id, out var t)
        ? t : throw new InvalidInputException($"token id {id} is not in the tokenizer's vocabulary ({encoder.Count} tokens)");

    /// <summary>
    /// Text for ids, for messages: bos/eos/unk and the padding after an eos are skipped, "&lt;/w&gt;" becomes
    /// a space, bytes are UTF-8 decoded.
    /// </summary>
    public string Decode(IEnumerable<long> ids)
    {
        var bytes = new List<byte>();
        bool afterEos = false;
        foreach (long id in ids)
        {
            if (id == EosId) afterEos = true;
            // SD2's pad "!" is also an ordinary token, so only padding after the eos is dropped.
            if (id == BosId || id == EosId || id == unkId || afterEos && id == PadId) continue;
            afterEos = false;
            foreach (char c in TokenOf(id))
            {
                if (ByteDecoder.TryGetValue(c, out byte b)) bytes.Add(b);
                else bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
            }
        }
        // Invalid UTF-8 (a multi-byte character cut by truncation) decodes to U+FFFD, like errors="replace".
        return Encoding.UTF8.GetString(bytes.ToArray()).Replace(EndOfWord, " ").Trim();
    }

    void AppendContentIds(string text, List<int> ids)
    {
        foreach (var (piece, isAdded) in SplitAddedTokens(text))
        {
            if (isAdded) { ids.Add(addedTokenIds[piece]); continue; }
            string clean = TextCleaning.PythonLower(TextCleaning.WhitespaceClean(TextCleaning.FixText(piece)));
            foreach (var word in PreTokenize(clean))
                foreach (var token in Bpe(ByteEncode(word)))
                    ids.Add(encoder.TryGetValue(token, out int id) ? id : unkId);
        }
    }

    /// <summary>
    /// transformers' added-token trie: added tokens (bos/eos/unk/pad and added_tokens_decoder) are cut out
    /// of the raw text, case-sensitively and before any cleaning; the longest match at the leftmost position wins.
    /// </summary>
    IEnumerable<(string Piece, bool IsAdded)> SplitAddedTokens(string text)
    {
        int start = 0, i = 0;
        while (i < text.Length)
        {
            string? hit = null;
            foreach (var t in addedTokens)
                if (i + t.Length <= text.Length && string.CompareOrdinal(text, i, t, 0, t.Length) == 0) { hit = t; break; }
            if (hit is null) { i++; continue; }
            if (i > start) yield return (text[start..i], false);
            yield return (hit, true);
            i += hit.Length;
            start = i;
        }
        if (start < text.Length) yield return (text[start..], false);
    }

    // ------------------------------------------------------------------ pre-tokenization

    /// <summary>
    /// CLIP's <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
    /// (Python <c>regex</c>, IGNORECASE) applied with findall, on code points rather than UTF-16 units.
    /// </summary>
    public static List<string> PreTokenize(string text)
    {
        var words = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            int len = MatchLiteral(text, i, StartOfText) ?? MatchLiteral(text, i, EndOfText) ?? MatchContraction(text, i) ?? 0;
            if (len == 0)
            {
                var r = Rune.GetRuneAt(text, i);
                var cls = Classify(r);
                len = r.Utf16SequenceLength;
                if (cls == CharClass.Letter || cls == CharClass.Other)
                {
                    while (i + len < text.Length)
                    {
                        var next = Rune.GetRuneAt(text, i + len);
                        if (Classify(next) != cls) break;
                        len += next.Utf16SequenceLength;
                    }
                }
                else if (cls == CharClass.None) { i += len; continue; }
            }
            words.Add(text.Substring(i, len));
            i += len;
        }
        return words;
    }

    enum CharClass { Letter, Number, Other, None }

    static CharClass Classify(Rune r)
    {
        // U+0345 (combining ypogegrammeni) case-folds to iota: under IGNORECASE it matches neither [\p{L}] nor
        // [^\s\p{L}\p{N}], so findall skips it like whitespace.
        if (TextCleaning.IsWhitespace(r.Value) || r.Value == 0x345) return CharClass.None;
        var cat = Rune.GetUnicodeCategory(r);
        if (cat <= UnicodeCategory.OtherLetter) return CharClass.Letter;
        if (cat is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber) return CharClass.Number;
        return CharClass.Other;
    }

    // IGNORECASE also lets 's' match U+017F (long s); other letters of the pattern have no such twins once lower-cased.
    static bool PatternCharMatches(char textChar, char patternChar) =>
        textChar == patternChar || patternChar == 's' && textChar == '\u017F';

    static int? MatchLiteral(string text, int at, string literal)
    {
        if (at + literal.Length > text.Length) return null;
        for (int k = 0; k < literal.Length; k++)
            if (!PatternCharMatches(text[at + k], literal[k])) return null;
        return literal.Length;
    }

    static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    static int? MatchContraction(string text, int at)
    {
        if (text[at] != '\'') return null;
        foreach (var c in Contractions)
            if (MatchLiteral(text, at, c) is int n) return n;
        return null;
    }

    // ------------------------------------------------------------------ bytes and BPE

    // GPT-2/CLIP bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 onwards.
    static readonly char[] ByteEncoder = BuildByteEncoder();
    static readonly Dictionary<char, byte> ByteDecoder = Enumerable.Range(0, 256).ToDictionary(b => ByteEncoder[b], b => (byte)b);

    static char[] BuildByteEncoder()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    static string ByteEncode(string word)
    {
        var bytes = Encoding.UTF8.GetBytes(word);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteEncoder[bytes[i]];
        return new string(chars);
    }

    /// <summary>Merges the lowest-ranked adjacent pair until none is in merges.txt; "&lt;/w&gt;" marks the word end.</summary>
    string[] Bpe(string token)
    {
        if (token is StartOfText or EndOfText) return [token];
        if (cache.TryGetValue(token, out var cached)) return cached;

        var word = new List<string>(token.Length);
        for (int i = 0; i < token.Length - 1; i++) word.Add(token[i].ToString());
        word.Add(token[^1] + EndOfWord);

        while (word.Count > 1)
        {
            int bestRank = int.MaxValue;
            (string, string) best = default;
            for (int i = 0; i < word.Count - 1; i++)
            {
                if (bpeRanks.TryGetValue((word[i], word[i + 1]), out int rank) && rank < bestRank)
                {
                    bestRank = rank;
                    best = (word[i], word[i + 1]);
                }
            }
            if (bestRank == int.MaxValue) break;
            var merged = new List<string>(word.Count);
            for (int i = 0; i < word.Count; i++)
            {
                if (i < word.Count - 1 && word[i] == best.Item1 && word[i + 1] == best.Item2)
                {
                    merged.Add(best.Item1 + best.Item2);
                    i++;
                }
                else merged.Add(word[i]);
            }
            word = merged;
        }
        var result = word.ToArray();
        cache.TryAdd(token, result);
        return result;
    }
}
