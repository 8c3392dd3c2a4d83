using System.Text.Json;
using FocusNFix.Models;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// Golden case clip_tokenizer: the tokenizer files sit in the case folder and cases.json lists prompts with
/// the reference ids. For case i it returns <c>case.{i}.input_ids</c> (SD1.x, padded with eos),
/// <c>case.{i}.attention_mask</c>, <c>case.{i}.input_ids_pad_bang</c> (SD2.x, pad token "!"),
/// <c>case.{i}.input_ids_untruncated</c> and <c>case.{i}.openai_clip_ids</c> (openai/CLIP's SimpleTokenizer,
/// which agrees with the untruncated ids). The <c>*_no_ftfy</c> fields describe transformers without ftfy,
/// a different tokenizer, and are not compared.
/// </summary>
public static class TokenizerCase
{
    public static CaseTensors Run(string caseDir)
    {
        string casesPath = Path.Combine(caseDir, "cases.json");
        if (!File.Exists(casesPath)) throw new InvalidInputException($"{casesPath}: cases.json not found");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(casesPath));
        var cases = doc.RootElement.GetProperty("cases");

        var sd1 = ClipTokenizer.FromFolder(caseDir);
        var sd2 = ClipTokenizer.FromFolder(caseDir, padTokenOverride: "!");

        var expected = new Dictionary<string, Tensor>();
        var actual = new Dictionary<string, Tensor>();
        int i = 0;
        foreach (var c in cases.EnumerateArray())
        {
            string prompt = c.GetProperty("prompt").GetString() ?? "";
            var full = sd1.EncodeUnpadded(prompt).Select(x => (long)x).ToArray();
            int used = Math.Min(full.Length, sd1.MaxLength);
            var mask = Enumerable.Range(0, sd1.MaxLength).Select(k => k < used ? 1L : 0L).ToArray();

            void Add(string field, long[] ours)
            {
                if (!c.TryGetProperty(field, out var e)) return;
                var reference = e.EnumerateArray().Select(x => x.GetInt64()).ToArray();
                expected[$"case.{i}.{field}"] = tensor(reference, ScalarType.Int64);
                actual[$"case.{i}.{field}"] = tensor(ours, ScalarType.Int64);
            }
            Add("input_ids", sd1.Encode(prompt).Ids);
            Add("attention_mask", mask);
            Add("input_ids_pad_bang", sd2.Encode(prompt).Ids);
            Add("input_ids_untruncated", full);
            Add("openai_clip_ids", full);
            i++;
        }
        return new CaseTensors(expected, actual);
    }
}
