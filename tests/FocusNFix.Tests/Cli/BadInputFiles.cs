using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using FocusNFix.IO;
using FocusNFix.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Cli;

/// <summary>
/// The bad inputs of <see cref="BadInputCatalogueTests"/>, built once in a temporary folder: broken copies of the tiny
/// golden pipeline (configs copied, weights linked), LoRA files with bad alpha/rank/values, damaged PNGs, a FIFO, a
/// symbolic link loop, an ordinary file where a folder is expected.
/// </summary>
public sealed class BadInputFiles : IDisposable
{
    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    static extern int MkFifo(string path, uint mode);

    public string Root { get; } = Directory.CreateTempSubdirectory("fnf-badinput-").FullName;
    public string Inputs => Path.Combine(Root, "inputs");
    public static string Pipeline => Golden.Case("pipeline_tiny_sd15");
    public static string Models => Path.Combine(Golden.Root, "models", "shapesworld");
    public static string RewardHazard => Path.Combine(Models, "reward-hazard");

    /// <summary>A named pipe: opening it for reading blocks until a writer comes.</summary>
    public string Fifo => In("fifo");
    /// <summary>A symbolic link to a link back to itself.</summary>
    public string Loop => In("loop-a");
    /// <summary>An ordinary file, given where a folder is expected.</summary>
    public string AFile => In("a-file.txt");
    public string Prompts => In("prompts.txt");
    public string GoodLora => In("good-lora.safetensors");
    /// <summary>A valid LoRA for unet_tiny_sd15 (two layers per block): the pipeline's UNet (one layer per block) lacks some of its layers.</summary>
    public static string OtherModelLora => Path.Combine(Golden.Case("lora_peft_names"), "lora_peft_format.safetensors");

    public BadInputFiles()
    {
        Directory.CreateDirectory(Inputs);
        if (MkFifo(Fifo, Convert.ToUInt32("644", 8)) != 0) throw new IOException($"mkfifo {Fifo} failed: errno {Marshal.GetLastPInvokeError()}");
        File.CreateSymbolicLink(In("loop-a"), In("loop-b"));
        File.CreateSymbolicLink(In("loop-b"), In("loop-a"));
        File.WriteAllText(AFile, "not a folder\n");
        File.WriteAllText(Prompts, "a red circle\n");
        File.WriteAllBytes(In("garbage.dat"), Enumerable.Range(0, 3000).Select(i => (byte)(i * 7919 % 251)).ToArray());
        WriteLoras();
        WritePipelines();
        WritePngs();
        WriteCheckCase();
        File.WriteAllText(In("bad-log.jsonl"), "{\"step\": 0, \"loss\": \"high\"}\n");
        File.WriteAllText(In("world-array.json"), "[1, 2]\n");
        Directory.CreateDirectory(In("empty-folder"));
        File.WriteAllBytes(In("lora.pt"), new byte[] { 0x80, 0x02 });
    }

    public string In(string name) => Path.Combine(Inputs, name);

    // ---- LoRA files: one attention projection of the tiny UNet (to_q: 32 -> 32), PEFT keys.

    const string Module = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";

    void WriteLoras()
    {
        Lora("good-lora", 4, 32);
        Lora("lora-rank-zero", 0, 32);
        Lora("lora-alpha-negative", 4, 32, new() { ["lora_alpha"] = "-4" });
        Lora("lora-alpha-zero", 4, 32, new() { ["lora_alpha"] = "0" });
        Lora("lora-alpha-text", 4, 32, new() { ["lora_alpha"] = "four" });
        Lora("lora-rank-metadata", 4, 32, new() { ["lora_rank"] = "8" });
        Lora("lora-nan-weights", 4, 32, nanUp: true);
        using (var down = ones(4, 32)) using (var up = ones(32, 3))
            Safetensors.Save(In("lora-ranks-differ.safetensors"), new Dictionary<string, Tensor>
                { [$"unet.{Module}.lora_A.weight"] = down, [$"unet.{Module}.lora_B.weight"] = up });
        var kohya = "lora_unet_" + Module.Replace('.', '_');
        using (var down = ones(4, 32)) using (var up = ones(32, 4)) using (var alpha = tensor(float.NaN))
            Safetensors.Save(In("lora-alpha-nan.safetensors"), new Dictionary<string, Tensor>
                { [$"{kohya}.lora_down.weight"] = down, [$"{kohya}.lora_up.weight"] = up, [$"{kohya}.alpha"] = alpha });
        var good = File.ReadAllBytes(GoodLora);
        File.WriteAllBytes(In("lora-truncated.safetensors"), good[..(good.Length / 2)]);
    }

    void Lora(string name, int rank, int features, Dictionary<string, string>? metadata = null, bool nanUp = false)
    {
        using var down = full(rank, features, 0.01f);
        using var up = nanUp ? full(features, rank, float.NaN) : full(features, rank, 0.02f);
        Safetensors.Save(In(name + ".safetensors"), new Dictionary<string, Tensor>
            { [$"unet.{Module}.lora_A.weight"] = down, [$"unet.{Module}.lora_B.weight"] = up }, metadata);
    }

    // ---- Broken copies of the tiny pipeline: configs copied, weight files linked (the golden folder is read-only).

    public string BrokenPipeline(string name) => In("pipe-" + name);

    void WritePipelines()
    {
        Broken("unet-zero-channels", p => EditJson(Path.Combine(p, "unet", "config.json"), o => o["block_out_channels"] = new JsonArray(0, 64)));
        Broken("unet-negative-layers", p => EditJson(Path.Combine(p, "unet", "config.json"), o => o["layers_per_block"] = -1));
        Broken("unet-nan-eps", p => File.WriteAllText(Path.Combine(p, "unet", "config.json"),
            File.ReadAllText(Path.Combine(p, "unet", "config.json")).Replace("\"norm_eps\": 1e-05", "\"norm_eps\": NaN")));
        Broken("vae-negative-groups", p => EditJson(Path.Combine(p, "vae", "config.json"), o => o["norm_num_groups"] = -2));
        Broken("vae-zero-latents", p => EditJson(Path.Combine(p, "vae", "config.json"), o => o["latent_channels"] = 0));
        Broken("text-nan-eps", p => File.WriteAllText(Path.Combine(p, "text_encoder", "config.json"),
            System.Text.RegularExpressions.Regex.Replace(File.ReadAllText(Path.Combine(p, "text_encoder", "config.json")), "\"layer_norm_eps\": [^,}]+", "\"layer_norm_eps\": NaN")));
        Broken("text-zero-hidden", p => EditJson(Path.Combine(p, "text_encoder", "config.json"), o => o["hidden_size"] = 0));
        Broken("no-vae", p => Directory.Delete(Path.Combine(p, "vae"), true));
        Broken("no-unet-weights", p => File.Delete(Weights(p, "unet")));
        Broken("no-index", p => File.Delete(Path.Combine(p, "model_index.json")));
        Broken("index-fifo", p => Replace(Path.Combine(p, "model_index.json"), f => MkFifo(f, Convert.ToUInt32("644", 8))));
        Broken("unet-config-loop", p => Replace(Path.Combine(p, "unet", "config.json"), f => File.CreateSymbolicLink(f, Loop)));
        Broken("unet-config-folder", p => Replace(Path.Combine(p, "unet", "config.json"), f => Directory.CreateDirectory(f)));
        Broken("unet-weights-fifo", p => Replace(Weights(p, "unet"), f => MkFifo(f, Convert.ToUInt32("644", 8))));
        Broken("unet-weights-truncated", p => Replace(Weights(p, "unet"), f =>
            File.WriteAllBytes(f, File.ReadAllBytes(Weights(Pipeline, "unet"))[..100_000])));
        Broken("unet-weights-garbage", p => Replace(Weights(p, "unet"), f => File.Copy(In("garbage.dat"), f)));
        Broken("vocab-device", p => Replace(Path.Combine(p, "tokenizer", "vocab.json"), f => File.CreateSymbolicLink(f, "/dev/zero")));
        Broken("scheduler-not-json", p => File.WriteAllText(Path.Combine(p, "scheduler", "scheduler_config.json"), "{\"_class_name\": \"DDIMScheduler\","));
    }

    static string Weights(string pipeline, string component) =>
        Path.Combine(pipeline, component, component == "text_encoder" ? "model.safetensors" : "diffusion_pytorch_model.safetensors");

    void Broken(string name, Action<string> damage)
    {
        var dir = BrokenPipeline(name);
        foreach (var src in Directory.EnumerateFiles(Pipeline, "*", SearchOption.AllDirectories))
        {
            var dst = Path.Combine(dir, Path.GetRelativePath(Pipeline, src));
            Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
            if (src.EndsWith(".safetensors", StringComparison.Ordinal)) File.CreateSymbolicLink(dst, src);
            else
            {
                File.Copy(src, dst);
                File.SetUnixFileMode(dst, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            }
        }
        damage(dir);
    }

    static void Replace(string path, Action<string> create)
    {
        File.Delete(path);
        create(path);
    }

    static void EditJson(string path, Action<JsonObject> edit)
    {
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(o);
        File.WriteAllText(path, o.ToJsonString());
    }

    // ---- PNGs for --from-png.

    public string Png(string name) => In(name + ".png");

    void WritePngs()
    {
        var info = new GenerationInfo
        {
            Prompt = "a red circle", SchedulerClass = "DDIMScheduler", Model = Pipeline, Steps = 2, GuidanceScale = 7.5, Height = 32, Width = 32,
        };
        using var image = full(3, 32, 32, 0.5f);
        Images.SavePng(image, Png("good"), info.PngText());
        Images.SavePng(image, Png("steps-negative"), (info with { Steps = -4 }).PngText());
        Images.SavePng(image, Png("height-13"), (info with { Height = 13 }).PngText());
        Images.SavePng(image, Png("no-metadata"));
        Images.SavePng(image, Png("metadata-not-json"), new[] { (GenerationInfo.JsonKeyword, "{\"format\": 1,") });
        var good = File.ReadAllBytes(Png("good"));
        File.WriteAllBytes(Png("truncated"), good[..(good.Length - 20)]);
        File.WriteAllText(Png("text"), "this is not an image\n");
    }

    // ---- A conformance case whose inputs file is cut short.

    public string CheckCase => In("check-truncated");

    void WriteCheckCase()
    {
        Directory.CreateDirectory(CheckCase);
        foreach (var f in Directory.EnumerateFiles(Golden.Case("scheduler_ddim"))) File.Copy(f, Path.Combine(CheckCase, Path.GetFileName(f)));
        var inputs = Path.Combine(CheckCase, "inputs.safetensors");
        var bytes = File.ReadAllBytes(inputs);
        File.Delete(inputs);
        File.WriteAllBytes(inputs, bytes[..(bytes.Length / 2)]);
    }

    public void Dispose() => Directory.Delete(Root, true);
}
