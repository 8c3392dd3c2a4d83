using System.Text.Json;
using FocusNFix.Conformance;
using FocusNFix.Models;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Models;

public class ClipTokenizerTests
{
    static readonly string CaseDir = Golden.Case("clip_tokenizer");
    static readonly Lazy<ClipTokenizer> Sd1 = new(() => ClipTokenizer.FromFolder(CaseDir));

    static JsonElement[] GoldenCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(CaseDir, "cases.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(e => e.Clone()).ToArray();
    }

    [Fact]
    public void AllGoldenPromptsGiveTheReferenceIdsExactly()
    {
        var result = TokenizerCase.Run(CaseDir);
        int prompts = GoldenCases().Length;
        Assert.Equal(40, prompts);
        // input_ids, attention_mask, input_ids_pad_bang, input_ids_untruncated and openai_clip_ids for each prompt.
        Assert.Equal(5 * prompts, result.Expected.Count);
        var failures = new List<string>();
        foreach (var (name, e) in result.Expected)
        {
            var a = result.Actual[name];
            Assert.Equal(ScalarType.Int64, a.dtype);
            long[] ev = e.data<long>().ToArray(), av = a.data<long>().ToArray();
            if (!e.shape.SequenceEqual(a.shape) || !ev.SequenceEqual(av))
                failures.Add($"{name}: expected [{string.Join(",", ev)}] got [{string.Join(",", av)}]");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void TokensMatchTheReferenceTokenStrings()
    {
        var tok = Sd1.Value;
        foreach (var c in GoldenCases())
        {
            var ids = c.GetProperty("input_ids_untruncated").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            var tokens = c.GetProperty("tokens").EnumerateArray().Select(x => x.GetString()!).ToArray();
            Assert.Equal(tokens, tok.ConvertIdsToTokens(ids));
        }
    }

    [Fact]
    public void ReadsSpecialTokensAndLengthFromTheConfig()
    {
        var tok = Sd1.Value;
        Assert.Equal(77, tok.MaxLength);
        Assert.Equal(49406, tok.BosId);
        Assert.Equal(49407, tok.EosId);
        Assert.Equal(49407, tok.PadId);
        Assert.Equal(49408, tok.VocabSize);
        Assert.Equal(new[] { 49406, 320, 1125, 539, 320, 2368, 49407 }, tok.EncodeUnpadded("a photo of a cat"));
        Assert.Equal("a photo of a cat", tok.Decode(tok.Encode("A  Photo of a CAT").Ids));
    }

    [Fact]
    public void Sd2StylePadTokenBangPadsWithZero()
    {
        string dir = Path.Combine(Path.GetTempPath(), "fnf-tok-sd2-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(CaseDir, "vocab.json"), Path.Combine(dir, "vocab.json"));
            File.Copy(Path.Combine(CaseDir, "merges.txt"), Path.Combine(dir, "merges.txt"));
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
                """{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!", "model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}""");
            var tok = ClipTokenizer.FromFolder(dir);
            Assert.Equal(0, tok.PadId);
            Assert.Equal("!", tok.PadToken);
            var enc = tok.Encode("a photo of a cat");
            Assert.Equal(new long[] { 49406, 320, 1125, 539, 320, 2368, 49407 }, enc.Ids[..7]);
            Assert.All(enc.Ids[7..], id => Assert.Equal(0, id));
            Assert.Equal(0, enc.TruncatedTokens);
            Assert.Equal("wow !", tok.Decode(tok.Encode("wow!").Ids));

            // "!" is then an added token, split out before BPE: "!!!" is three "!" (id 0), not the merged "!!!".
            foreach (var c in GoldenCases())
            {
                string prompt = c.GetProperty("prompt").GetString()!;
                var reference = c.GetProperty("input_ids_pad_bang").EnumerateArray().Select(x => x.GetInt64()).ToArray();
                Assert.Equal(reference, tok.Encode(prompt).Ids);
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void LongPromptIsTruncatedKeepingEosAndWarnsOnce()
    {
        var tok = Sd1.Value;
        string longPrompt = string.Join(", ", Enumerable.Repeat("a cyberpunk city at night", 14));
        var full = tok.EncodeUnpadded(longPrompt);
        int dropped = full.Length - 77;
        Assert.True(dropped > 0);

        var enc = tok.Encode(longPrompt);
        Assert.Equal(77, enc.Ids.Length);
        Assert.Equal(dropped, enc.TruncatedTokens);
        Assert.Equal(49406, enc.Ids[0]);
        Assert.Equal(49407, enc.Ids[76]);
        Assert.Equal(full[1..76].Select(x => (long)x), enc.Ids[1..76]);

        var warnings = new List<string>();
        using var batch = tok.Tokenize(new[] { longPrompt, "a photo of a cat" }, warnings.Add);
        Assert.Equal(new long[] { 2, 77 }, batch.shape);
        Assert.Equal(ScalarType.Int64, batch.dtype);
        Assert.Equal(enc.Ids, batch[0].data<long>().ToArray());
        Assert.Equal(tok.Encode("a photo of a cat").Ids, batch[1].data<long>().ToArray());
        var warning = Assert.Single(warnings);
        Assert.Contains($"{dropped} token(s)", warning);
        Assert.Contains("a cyberpunk city at night, a cyberpunk", warning);
    }

    [Fact]
    public void MissingFilesGiveClearErrors()
    {
        string dir = Path.Combine(Path.GetTempPath(), "fnf-tok-missing-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(CaseDir, "vocab.json"), Path.Combine(dir, "vocab.json"));
            var e = Assert.Throws<InvalidInputException>(() => ClipTokenizer.FromFolder(dir));
            Assert.Contains("merges.txt", e.Message);

            File.Delete(Path.Combine(dir, "vocab.json"));
            File.Copy(Path.Combine(CaseDir, "merges.txt"), Path.Combine(dir, "merges.txt"));
            e = Assert.Throws<InvalidInputException>(() => ClipTokenizer.FromFolder(dir));
            Assert.Contains("vocab.json", e.Message);

            File.Copy(Path.Combine(CaseDir, "vocab.json"), Path.Combine(dir, "vocab.json"));
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"pad_token": "<|nope|>"}""");
            e = Assert.Throws<InvalidInputException>(() => ClipTokenizer.FromFolder(dir));
            Assert.Contains("pad_token '<|nope|>'", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Theory]
    [InlineData("pipeline_tiny_sd15_run", "pipeline_tiny_sd15")]
    [InlineData("pipeline_tiny_pixel_run", "pipeline_tiny_pixel")]
    public void PipelineTokenizerFoldersReproduceTheRunsInputIds(string run, string pipeline)
    {
        var tok = ClipTokenizer.FromFolder(Path.Combine(Golden.Case(pipeline), "tokenizer"));
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Golden.Case(run), "inputs.json")));
        var prompts = doc.RootElement.GetProperty("prompts").EnumerateArray().Select(x => x.GetString()!).ToList();
        var outputs = Golden.Outputs(run);
        using var ids = tok.Tokenize(prompts);
        Assert.Equal(outputs["input_ids"].data<long>().ToArray(), ids.data<long>().ToArray());
        if (outputs.TryGetValue("negative_input_ids", out var negative))
        {
            using var neg = tok.Tokenize(Enumerable.Repeat("", prompts.Count).ToList());
            Assert.Equal(negative.data<long>().ToArray(), neg.data<long>().ToArray());
        }
    }

    // Expected strings are ftfy 6.1.1's fix_text output for the same inputs.
    [Theory]
    [InlineData("Tom &amp;amp; Jerry &lt;3", "Tom & Jerry <3")]
    [InlineData("&lt;b&gt; stays <i>html</i>", "&lt;b&gt; stays <i>html</i>")]
    [InlineData("P&EACUTE;REZ &#x2019;s &#8212; &check; &#65a;", "PÉREZ 's — ✓ &#65a;")]
    [InlineData("“smart” ‘quotes’ ﬁne ＬＯＵＤ　ＮＯＩＳＥＳ", "\"smart\" 'quotes' fine LOUD NOISES")]
    [InlineData("cafÃ© sÃ³ schÃ¶n", "café só schön")]
    [InlineData("âœ” No problems", "✔ No problems")]
    [InlineData("voilÃ le travail", "voilà le travail")]
    [InlineData("zero\u200bwidth\u00a0nbsp", "zero\u200bwidth\u00a0nbsp")]
    [InlineData("e\u0301 NFC \u001b[36mblue\u001b[0m\u0000", "\u00e9 NFC blue")]
    public void FixTextFollowsFtfy(string input, string expected) => Assert.Equal(expected, TextCleaning.FixText(input));
}
