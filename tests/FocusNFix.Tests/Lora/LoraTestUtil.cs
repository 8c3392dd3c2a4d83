using System.Text.Json;
using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Lora;

static class LoraTestUtil
{
    public const string Case = "lora_peft_names";
    public static string CaseDir => Golden.Case(Case);
    public static string GoldenFile(string name) => Path.Combine(CaseDir, name);

    public static readonly (string File, LoraFormat Format)[] GoldenFiles =
    {
        ("lora_peft_format.safetensors", LoraFormat.Peft),
        ("pytorch_lora_weights.safetensors", LoraFormat.Diffusers),
        ("lora_old_attn_procs.safetensors", LoraFormat.AttnProcs),
        ("lora_kohya_format.safetensors", LoraFormat.Kohya),
    };

    public static UNet2DConditionModel BaseUnet()
    {
        var unet = UNet2DConditionModel.FromPretrained(Golden.Case("unet_tiny_sd15"));
        unet.eval();
        return unet;
    }

    public static Tensor Forward(UNet2DConditionModel unet, Dictionary<string, Tensor> inputs)
    {
        using var _ = no_grad();
        return unet.forward(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"]);
    }

    /// <summary>The golden key list of one file, in lora_keys.json.</summary>
    public static HashSet<string> GoldenKeys(string file)
    {
        using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(GoldenFile("lora_keys.json")));
        return doc.RootElement.GetProperty("keys").GetProperty(file).EnumerateArray().Select(e => e.GetString()!).ToHashSet();
    }

    public static HashSet<string> KeysOf(string path) => Safetensors.ReadHeader(path).Entries.Select(e => e.Name).ToHashSet();

    /// <summary>Gives every lora_B seeded N(0, std²) values, as if trained.</summary>
    public static void RandomizeB(LoraNetwork net, ulong seed, double std = 0.1)
    {
        using var g = new Generator(seed);
        using var _ = no_grad();
        foreach (var a in net.Adapters)
        {
            using var r = randn(a.lora_B.shape, generator: g) * std;
            a.lora_B.copy_(r);
        }
    }

    public static double MaxDiff(Tensor a, Tensor b)
    {
        using var d = (a.to(float64) - b.to(float64)).abs().max();
        return d.item<double>();
    }
}
