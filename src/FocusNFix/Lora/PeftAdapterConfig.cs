using System.Text.Json;
using System.Text.Json.Nodes;
using FocusNFix.IO;

namespace FocusNFix.Lora;

/// <summary>
/// PEFT's <c>adapter_config.json</c> for a LoRA (peft.LoraConfig), the file <c>PeftModel.from_pretrained(model, dir)</c>
/// reads before <c>adapter_model.safetensors</c>. Only the fields a UNet attention LoRA needs are meaningful here; the
/// others are written with PEFT's defaults so that PEFT (0.10, which rejects unknown keys) builds the same LoraConfig.
/// </summary>
public sealed record PeftAdapterConfig(int R, double LoraAlpha, IReadOnlyList<string> TargetModules, string? BaseModelNameOrPath, bool UseRslora = false)
{
    public const string FileName = "adapter_config.json";
    public const string WeightsName = "adapter_model.safetensors";

    /// <summary>
    /// The alpha that gives our scaling alpha / r the same value as PEFT's: alpha / r, or alpha / √r with rsLoRA.
    /// </summary>
    public double EffectiveAlpha => UseRslora ? LoraAlpha * Math.Sqrt(R) : LoraAlpha;

    public string ToJson()
    {
        var o = new JsonObject
        {
            ["alpha_pattern"] = new JsonObject(),
            ["base_model_name_or_path"] = BaseModelNameOrPath,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["lora_alpha"] = LoraAlpha == Math.Floor(LoraAlpha) && Math.Abs(LoraAlpha) < 1e9 ? JsonValue.Create((long)LoraAlpha) : JsonValue.Create(LoraAlpha),
            ["lora_dropout"] = 0.0,
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = R,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = new JsonArray(TargetModules.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
            ["task_type"] = null,
            ["use_dora"] = false,
            ["use_rslora"] = UseRslora,
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

    /// <summary>
    /// Reads an adapter_config.json. Features this LoRA loader cannot honour (DoRA, per-layer rank/alpha patterns,
    /// bias training, regex target strings, other PEFT methods) are errors naming the key, never ignored.
    /// </summary>
    public static PeftAdapterConfig Load(string path)
    {
        JsonObject o;
        try { o = JsonNode.Parse(InputFile.ReadAllText(path, "PEFT adapter config")) as JsonObject ?? throw new InvalidInputException($"{path}: expected a JSON object"); }
        catch (JsonException e) { throw new InvalidInputException($"{path}: not valid JSON ({e.Message})"); }
        string Str(string key) => o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new InvalidInputException($"{path}: '{key}' is {Show(o[key])}, expected a string");
        var type = Str("peft_type");
        if (type != "LORA") throw new InvalidInputException($"{path}: 'peft_type' = '{type}', expected LORA (other PEFT methods are not supported)");
        int r = o["r"] is JsonValue rv && rv.TryGetValue<int>(out var ri) && ri > 0 ? ri
            : throw new InvalidInputException($"{path}: 'r' is {Show(o["r"])}, expected a positive integer");
        double alpha = o["lora_alpha"] is JsonValue av && av.TryGetValue<double>(out var ad) && double.IsFinite(ad) && ad > 0 ? ad
            : o["lora_alpha"] is null ? 8 // PEFT's default lora_alpha
            : throw new InvalidInputException($"{path}: 'lora_alpha' is {Show(o["lora_alpha"])}, expected a positive number");
        var targets = o["target_modules"] switch
        {
            JsonArray a when a.Count > 0 && a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)) => a.Select(x => x!.GetValue<string>()).ToList(),
            JsonValue v when v.TryGetValue<string>(out var s) => throw new InvalidInputException($"{path}: 'target_modules' is the regular expression '{s}'; expected a list of module names"),
            var other => throw new InvalidInputException($"{path}: 'target_modules' is {Show(other)}, expected a non-empty list of module names"),
        };
        foreach (var key in new[] { "rank_pattern", "alpha_pattern" })
            if (o[key] is JsonObject p && p.Count > 0)
                throw new InvalidInputException($"{path}: '{key}' is not empty; per-layer ranks and alphas are not supported");
        if (o["use_dora"] is JsonValue dv && dv.TryGetValue<bool>(out var dora) && dora)
            throw new InvalidInputException($"{path}: 'use_dora' is true; DoRA adapters are not supported");
        if (o["bias"] is JsonValue bv && bv.TryGetValue<string>(out var bias) && bias != "none")
            throw new InvalidInputException($"{path}: 'bias' = '{bias}'; only LoRA adapters without trained biases (\"none\") are supported");
        bool rslora = o["use_rslora"] is JsonValue sv && sv.TryGetValue<bool>(out var rs) && rs;
        string? baseModel = o["base_model_name_or_path"] is JsonValue mv && mv.TryGetValue<string>(out var m) ? m : null;
        return new PeftAdapterConfig(r, alpha, targets, baseModel, rslora);
    }

    static string Show(JsonNode? n) => n is null ? "missing or null" : n.ToJsonString();
}
