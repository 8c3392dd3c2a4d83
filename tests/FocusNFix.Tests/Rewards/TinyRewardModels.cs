using System.Text.Json.Nodes;
using FocusNFix.IO;
using FocusNFix.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Rewards;

/// <summary>
/// Tiny reward weights on disk with the published key names: the golden CLIP cases (written by transformers
/// and diffusers) plus hand-written keys for the aesthetic MLP and a CLIPModel assembled from the two golden towers.
/// </summary>
static class TinyRewardModels
{
    public static string SafetyFolder => Golden.Case("safety_checker_tiny");
    public static string VisionFolder => Golden.Case("clip_vision_tiny");

    /// <summary>clip_text_tiny's special ids: bos 998, eos 999 (also the padding), vocabulary 1000.</summary>
    public const long Bos = 998, Eos = 999;

    /// <summary>
    /// A stand-in tokenizer for the tiny vocabulary: bos, one id per word (from its characters), eos, padded with
    /// eos to 77, as int64 built by hand. Records what it was asked to tokenize.
    /// </summary>
    public static Func<IReadOnlyList<string>, Tensor> Tokenizer(List<string>? seen = null) => prompts =>
    {
        var ids = new long[prompts.Count * 77];
        for (int i = 0; i < prompts.Count; i++)
        {
            seen?.Add(prompts[i]);
            var words = prompts[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(75).ToArray();
            var row = new List<long> { Bos };
            row.AddRange(words.Select(w => (long)(w.Aggregate(17, (h, c) => (h * 31 + c) % 997) % 990 + 1)));
            row.Add(Eos);
            while (row.Count < 77) row.Add(Eos);
            row.CopyTo(ids, i * 77);
        }
        return torch.tensor(ids, new long[] { prompts.Count, 77 });
    };

    /// <summary>Writes the LAION MLP's keys layers.{0,2,4,6,7}.weight/bias with the given widths, random.</summary>
    public static string WriteAestheticMlp(string dir, int inputSize, int[] widths, int seed = 7)
    {
        torch.manual_seed(seed);
        var sizes = new[] { inputSize }.Concat(widths).Append(1).ToArray();
        var slots = new[] { 0, 2, 4, 6, 7 };
        var dict = new Dictionary<string, Tensor>();
        for (int i = 0; i < 5; i++)
        {
            dict[$"layers.{slots[i]}.weight"] = torch.randn(sizes[i + 1], sizes[i]) * (1.0 / Math.Sqrt(sizes[i]));
            dict[$"layers.{slots[i]}.bias"] = torch.randn(sizes[i + 1]) * 0.1;
        }
        var path = Path.Combine(dir, "aesthetic.safetensors");
        Safetensors.Save(path, dict, new Dictionary<string, string> { ["format"] = "pt" });
        foreach (var t in dict.Values) t.Dispose();
        return path;
    }

    /// <summary>
    /// A transformers CLIPModel folder: text_model.* from clip_text_tiny (or from <paramref name="textFolder"/>, a
    /// CLIPTextModel folder with hidden size 32), vision_model.* and visual_projection from clip_vision_tiny
    /// (projection 24), plus text_projection [24,32] and logit_scale.
    /// </summary>
    public static string WriteClipModelFolder(string dir, string? textFolder = null, int seed = 11)
    {
        textFolder ??= Golden.Case("clip_text_tiny");
        var folder = Path.Combine(dir, "clip-" + Path.GetFileName(Path.GetDirectoryName(textFolder + "/")));
        Directory.CreateDirectory(folder);
        var text = JsonNode.Parse(File.ReadAllText(Path.Combine(textFolder, "config.json")))!.AsObject();
        var vision = JsonNode.Parse(File.ReadAllText(Path.Combine(VisionFolder, "config.json")))!.AsObject();
        text.Remove("architectures");
        vision.Remove("architectures");
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPModel"),
            ["model_type"] = "clip",
            ["projection_dim"] = 24,
            ["logit_scale_init_value"] = 2.6592,
            ["text_config"] = text,
            ["vision_config"] = vision,
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        var weights = Safetensors.Load(Path.Combine(textFolder, "model.safetensors"));
        foreach (var (k, v) in Safetensors.Load(Path.Combine(VisionFolder, "model.safetensors"))) weights[k] = v;
        torch.manual_seed(seed);
        weights["text_projection.weight"] = torch.randn(24, 32) * 0.2;
        weights["logit_scale"] = torch.tensor(2.6592f);
        Safetensors.Save(Path.Combine(folder, "model.safetensors"), weights, new Dictionary<string, string> { ["format"] = "pt" });
        foreach (var t in weights.Values) t.Dispose();
        return folder;
    }

    /// <summary>
    /// A CLIPVisionModelWithProjection whose score -ê₀ penalises red: patch channel 0 measures redness
    /// r - (g+b)/2, one encoder layer averages it uniformly over all tokens into the class token
    /// (q = k = 0, v = out = identity on channel 0, MLP off), and the projection reads it out next to a constant
    /// channel. With an MLP computing -ê₀ it is an aesthetic reward that dislikes red patches.
    /// Written to disk with the real keys and loaded through FromPretrained.
    /// </summary>
    public static (string ClipFolder, string MlpPath) WriteRedPenaltyAesthetic(string dir)
    {
        var folder = Path.Combine(dir, "redclip");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), """
            { "architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model", "hidden_size": 8,
              "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 4,
              "projection_dim": 2, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5 }
            """);
        using var model = new ClipVisionModelWithProjection(ClipVisionConfig.Load(Path.Combine(folder, "config.json")));
        var sd = model.state_dict();
        using (no_grad())
        {
            foreach (var (k, t) in sd)
            {
                if (k.EndsWith("layer_norm1.weight") || k.EndsWith("layer_norm2.weight") || k.EndsWith("layrnorm.weight") || k.EndsWith("post_layernorm.weight"))
                    t.fill_(1);
                else t.zero_();
            }
            var patch = sd["vision_model.embeddings.patch_embedding.weight"];
            patch[0, 0].fill_(1.0 / 16);
            patch[0, 1].fill_(-0.5 / 16);
            patch[0, 2].fill_(-0.5 / 16);
            var pos = sd["vision_model.embeddings.position_embedding.weight"];
            pos[TensorIndex.Colon, 2].fill_(2.0);
            pos[TensorIndex.Colon, 3].fill_(-2.0);
            sd["vision_model.encoder.layers.0.self_attn.v_proj.weight"][0, 0].fill_(1.0);
            sd["vision_model.encoder.layers.0.self_attn.out_proj.weight"][0, 0].fill_(1.0);
            var proj = sd["visual_projection.weight"];
            proj[0, 0].fill_(1.0);
            proj[1, 2].fill_(1.0);
        }
        Safetensors.Save(Path.Combine(folder, "model.safetensors"), sd);
        var mlp = new Dictionary<string, Tensor>
        {
            ["layers.0.weight"] = torch.tensor(new float[] { 1, 0 }, new long[] { 1, 2 }),
            ["layers.2.weight"] = torch.ones(1, 1),
            ["layers.4.weight"] = torch.ones(1, 1),
            ["layers.6.weight"] = torch.ones(1, 1),
            ["layers.7.weight"] = -torch.ones(1, 1),
        };
        foreach (var i in new[] { 0, 2, 4, 6, 7 }) mlp[$"layers.{i}.bias"] = torch.zeros(1);
        var mlpPath = Path.Combine(dir, "red_mlp.safetensors");
        Safetensors.Save(mlpPath, mlp);
        return (folder, mlpPath);
    }

    /// <summary>Grey images (0.5 ± noise) with a red square at rows [top, top+size), cols [left, left+size).</summary>
    public static Tensor PlantedRedPatch(int batch, int height, int width, int top, int left, int size, double noise = 0.03, int seed = 3)
    {
        torch.manual_seed(seed);
        var x = (torch.full(batch, 3, height, width, 0.5f) + torch.randn(batch, 3, height, width) * noise).clamp(0, 1);
        using (no_grad())
        {
            var r = TensorIndex.Slice(top, top + size);
            var c = TensorIndex.Slice(left, left + size);
            x[TensorIndex.Colon, 0, r, c] = torch.tensor(0.9f);
            x[TensorIndex.Colon, 1, r, c] = torch.tensor(0.1f);
            x[TensorIndex.Colon, 2, r, c] = torch.tensor(0.1f);
        }
        return x;
    }

    /// <summary>IoU of (map &gt; threshold) with the square, per image.</summary>
    public static double[] IoU(Tensor map, int top, int left, int size, double threshold = 0.5)
    {
        long b = map.shape[0], h = map.shape[2], w = map.shape[3];
        using var truth = torch.zeros(1, 1, h, w, dtype: ScalarType.Bool);
        truth[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(top, top + size), TensorIndex.Slice(left, left + size)] = torch.tensor(true);
        using var pred = map.detach().cpu() > threshold;
        using var inter = (pred & truth).sum(new long[] { 1, 2, 3 }).to(float64);
        using var union = (pred | truth).sum(new long[] { 1, 2, 3 }).to(float64);
        using var iou = inter / union;
        return iou.data<double>().ToArray();
    }
}
