using System.Text.Json;
using FocusNFix.IO;
using static TorchSharp.torch;

namespace FocusNFix.Lora;

/// <summary>
/// The final LoRA of a training run, laid out so that other tools open the run folder with no file name given:
/// <list type="bullet">
/// <item><c>pytorch_lora_weights.safetensors</c>: diffusers' default name. <c>pipe.load_lora_weights(run_dir)</c> lists the
/// folder's top-level <c>*.safetensors</c> files and, when several remain, keeps those ending in this name
/// (diffusers 0.27 <c>loaders/lora.py</c>, <c>LoraLoaderMixin._best_guess_weight_name</c>); no other file here ends in it.</item>
/// <item><c>adapter_config.json</c> + <c>adapter_model.safetensors</c>: what <c>PeftModel.from_pretrained(unet, run_dir)</c>
/// reads (peft <c>utils/other.py</c> CONFIG_NAME / SAFETENSORS_WEIGHTS_NAME), keys prefixed <c>base_model.model.</c> as
/// <c>get_peft_model_state_dict</c> writes them for a PeftModel around the UNet.</item>
/// <item><c>kohya/lora_kohya.safetensors</c>: kohya sd-scripts keys for A1111 / ComfyUI, in a subfolder so the top level
/// holds only what diffusers and PEFT look for.</item>
/// </list>
/// Run folders written before this layout hold <c>lora.safetensors</c> (PEFT keys) and <c>lora_kohya.safetensors</c>;
/// <see cref="ResolveFile"/> still finds them.
/// </summary>
public static class RunFolderLora
{
    /// <summary>diffusers' LORA_WEIGHT_NAME_SAFE.</summary>
    public const string DiffusersName = "pytorch_lora_weights.safetensors";
    public const string KohyaName = "kohya/lora_kohya.safetensors";
    public const string LegacyPeftName = "lora.safetensors";
    public const string LegacyKohyaName = "lora_kohya.safetensors";

    /// <summary>The files a folder given as a LoRA is searched for, in this order.</summary>
    public static readonly IReadOnlyList<string> ReadOrder =
        new[] { DiffusersName, LegacyPeftName, PeftAdapterConfig.WeightsName, KohyaName, LegacyKohyaName };

    /// <summary>
    /// Writes the three forms of <paramref name="lora"/> into <paramref name="dir"/>, each file atomically.
    /// <paramref name="baseModel"/> goes into adapter_config.json's base_model_name_or_path.
    /// </summary>
    public static void Write(string dir, LoraNetwork lora, string? baseModel)
    {
        var layers = lora.Layers();
        var scaled = new List<Tensor>();
        try
        {
            var ranks = layers.Select(l => l.Rank).Distinct().ToList();
            if (ranks.Count != 1)
                throw new InvalidInputException($"{dir}: the LoRA has per-layer ranks ({string.Join(", ", ranks)}); adapter_config.json holds one rank");
            var meta = new Dictionary<string, string> { [LoraFile.TargetsKey] = JsonSerializer.Serialize(lora.Config.TargetModules) };
            // diffusers 0.27 takes alpha = r for PEFT-keyed files (it reads no alpha from them), so alpha / r is folded into
            // the up matrices; with alpha = r (the trainer's default) the file holds the trained weights bit for bit.
            var folded = layers.Select(l =>
            {
                if (l.Alpha == l.Rank) return l;
                var up = l.Up.mul(l.Alpha / l.Rank);
                scaled.Add(up);
                return new LoraLayer(l.Module, l.Down, up, l.Rank);
            }).ToList();
            LoraFile.Save(Path.Combine(dir, DiffusersName), folded, LoraFormat.Peft, meta);

            var alphas = layers.Select(l => l.Alpha).Distinct().ToList();
            var peftLayers = alphas.Count == 1 ? layers : folded;
            var peftAlpha = alphas.Count == 1 ? alphas[0] : ranks[0];
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var l in peftLayers)
            {
                tensors[$"{PeftModelPrefix}{l.Module}.lora_A.weight"] = l.Down;
                tensors[$"{PeftModelPrefix}{l.Module}.lora_B.weight"] = l.Up;
            }
            Safetensors.Save(Path.Combine(dir, PeftAdapterConfig.WeightsName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            new PeftAdapterConfig(ranks[0], peftAlpha, lora.Config.TargetModules, baseModel).Save(Path.Combine(dir, PeftAdapterConfig.FileName));

            LoraFile.Save(Path.Combine(dir, KohyaName), layers, LoraFormat.Kohya, meta);
        }
        finally
        {
            foreach (var t in scaled) t.Dispose();
            foreach (var l in layers) { l.Down.Dispose(); l.Up.Dispose(); }
        }
    }

    /// <summary>Keys of a PeftModel wrapping the UNet: PeftModel.base_model (LoraModel) .model (the UNet).</summary>
    public const string PeftModelPrefix = "base_model.model.";

    /// <summary>
    /// A LoRA file given directly, or the LoRA of a folder (a run folder, new or old layout, or a PEFT adapter folder),
    /// found by <see cref="ReadOrder"/>. A path that does not exist is returned as is, for the reader to report.
    /// </summary>
    public static string ResolveFile(string path)
    {
        if (InputFile.KindOf(path) != PathKind.Folder) return path;
        foreach (var name in ReadOrder)
        {
            var p = Path.Combine(path, name);
            if (InputFile.KindOf(p) != PathKind.Missing) return p;
        }
        throw new InvalidInputException($"{path}: the folder holds no LoRA file; looked for {string.Join(", ", ReadOrder)}");
    }
}
