using System.Text.Json;
using FocusNFix.IO;
using FocusNFix.Lora;
using TorchSharp;
using Xunit;
using static FocusNFix.Tests.Lora.LoraTestUtil;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Lora;

public class RunFolderLoraTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-runlora-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    /// <summary>
    /// diffusers 0.27's choice of a weights file when load_lora_weights gets a folder and no weight_name, ported from
    /// loaders/lora.py, LoraLoaderMixin._best_guess_weight_name: the folder's top-level entries ending in .safetensors,
    /// minus names containing scheduler/optimizer/checkpoint; if any ends in pytorch_lora_weights.safetensors, only
    /// those; more than one left is diffusers' ValueError.
    /// </summary>
    static string? DiffusersBestGuess(string dir)
    {
        var files = Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName).Where(f => f!.EndsWith(".safetensors", StringComparison.Ordinal)).ToList();
        if (files.Count == 0) return null;
        files = files.Where(f => new[] { "scheduler", "optimizer", "checkpoint" }.All(u => !f!.Contains(u, StringComparison.Ordinal))).ToList();
        if (files.Any(f => f!.EndsWith("pytorch_lora_weights.bin", StringComparison.Ordinal)))
            files = files.Where(f => f!.EndsWith("pytorch_lora_weights.bin", StringComparison.Ordinal)).ToList();
        else if (files.Any(f => f!.EndsWith("pytorch_lora_weights.safetensors", StringComparison.Ordinal)))
            files = files.Where(f => f!.EndsWith("pytorch_lora_weights.safetensors", StringComparison.Ordinal)).ToList();
        if (files.Count > 1) throw new InvalidOperationException($"Provided path contains more than one weights file: {string.Join(", ", files)}");
        return files[0];
    }

    /// <summary>A run folder's other contents, as the trainer leaves them.</summary>
    string RunFolderSkeleton(string name)
    {
        var dir = Path.Combine(_tmp, name);
        Directory.CreateDirectory(Path.Combine(dir, "originals"));
        Directory.CreateDirectory(Path.Combine(dir, "checkpoints", "step-000020"));
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        File.WriteAllText(Path.Combine(dir, "log.jsonl"), "");
        using var t = zeros(2);
        Safetensors.Save(Path.Combine(dir, "checkpoints", "step-000020", "lora_state.safetensors"), new Dictionary<string, Tensor> { ["x"] = t });
        Safetensors.Save(Path.Combine(dir, "checkpoints", "step-000020", "optimizer.safetensors"), new Dictionary<string, Tensor> { ["x"] = t });
        return dir;
    }

    [Fact]
    public void DiffusersDefaultRulePicksExactlyTheDiffusersFile()
    {
        using var unet = BaseUnet();
        using var lora = LoraNetwork.Attach(unet, new LoraConfig { Rank = 4, Alpha = 4 }, new Generator(1));
        RandomizeB(lora, 2);
        var run = RunFolderSkeleton("run");
        RunFolderLora.Write(run, lora, "models/some-base");
        Assert.Equal(RunFolderLora.DiffusersName, DiffusersBestGuess(run));
        var topLevel = Directory.GetFiles(run, "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(new[] { PeftAdapterConfig.WeightsName, RunFolderLora.DiffusersName }, topLevel);
        Assert.True(File.Exists(Path.Combine(run, RunFolderLora.KohyaName)));

        // The layout before this one: two top-level LoRA files, neither with the default name, is diffusers' error.
        var old = RunFolderSkeleton("old");
        lora.SavePeft(Path.Combine(old, RunFolderLora.LegacyPeftName));
        lora.SaveKohya(Path.Combine(old, RunFolderLora.LegacyKohyaName));
        Assert.Throws<InvalidOperationException>(() => DiffusersBestGuess(old));
    }

    [Fact]
    public void EveryWrittenFormLoadsToTheSameUnetOutput()
    {
        using var unet = BaseUnet();
        var inputs = Golden.Inputs(Case);
        Tensor trained;
        var run = Path.Combine(_tmp, "run");
        // alpha ≠ rank: the diffusers file must fold alpha / r in, the PEFT file must carry it in adapter_config.json.
        using (var lora = LoraNetwork.Attach(unet, new LoraConfig { Rank = 4, Alpha = 6, TargetModules = new[] { "to_q", "attn2.to_k", "to_out.0" } }, new Generator(1)))
        {
            RandomizeB(lora, 3, std: 0.2);
            trained = Forward(unet, inputs);
            RunFolderLora.Write(run, lora, "models/some-base");
        }
        using var _ = trained;
        using var baseOut = Forward(unet, inputs);
        Assert.True(MaxDiff(trained, baseOut) > 1e-2, "the LoRA should change the output");
        foreach (var file in new[] { RunFolderLora.DiffusersName, PeftAdapterConfig.WeightsName, RunFolderLora.KohyaName, "" })
        {
            using var loaded = LoraNetwork.Load(unet, Path.Combine(run, file));
            using var y = Forward(unet, inputs);
            loaded.Detach();
            Assert.True(MaxDiff(y, trained) < 1e-5, $"{file}: differs by {MaxDiff(y, trained):E2}");
        }
        // diffusers 0.27 reads no alpha from PEFT-keyed files: alpha / r must already be in the weights.
        var meta = Safetensors.ReadHeader(Path.Combine(run, RunFolderLora.DiffusersName)).Metadata;
        Assert.Equal("4", meta[LoraFile.AlphaKey]);
        Assert.All(KeysOf(Path.Combine(run, PeftAdapterConfig.WeightsName)), k =>
            Assert.Matches(@"^base_model\.model\..+\.(to_q|attn2\.to_k|to_out\.0)\.lora_[AB]\.weight$", k));
    }

    [Fact]
    public void AdapterConfigRoundTripsWithTheValuesUsed()
    {
        using var unet = BaseUnet();
        using var lora = LoraNetwork.Attach(unet, new LoraConfig { Rank = 2, Alpha = 3, TargetModules = new[] { "to_k", "to_v" } }, new Generator(1));
        var run = Path.Combine(_tmp, "run");
        RunFolderLora.Write(run, lora, "models/shapesworld/base");
        var path = Path.Combine(run, PeftAdapterConfig.FileName);
        var cfg = PeftAdapterConfig.Load(path);
        Assert.Equal(2, cfg.R);
        Assert.Equal(3.0, cfg.LoraAlpha);
        Assert.Equal(new[] { "to_k", "to_v" }, cfg.TargetModules);
        Assert.Equal("models/shapesworld/base", cfg.BaseModelNameOrPath);
        Assert.False(cfg.UseRslora);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        Assert.Equal("LORA", doc.RootElement.GetProperty("peft_type").GetString());
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("task_type").ValueKind);
        Assert.Equal(3, doc.RootElement.GetProperty("lora_alpha").GetInt32());
    }

    [Fact]
    public void AdapterConfigFeaturesWeCannotHonourAreErrors()
    {
        var good = new PeftAdapterConfig(4, 4, new[] { "to_q" }, null).ToJson();
        void Check(string from, string to, string expect)
        {
            var p = Path.Combine(_tmp, "adapter_config.json");
            Assert.Contains(from, good);
            File.WriteAllText(p, good.Replace(from, to));
            var e = Assert.Throws<InvalidInputException>(() => PeftAdapterConfig.Load(p));
            Assert.Contains(expect, e.Message);
            Assert.Contains(p, e.Message);
        }
        Check("\"use_dora\": false", "\"use_dora\": true", "use_dora");
        Check("\"rank_pattern\": {}", "\"rank_pattern\": {\"to_q\": 8}", "rank_pattern");
        Check("\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\"", "peft_type");
        Check("\"r\": 4", "\"r\": 0", "'r'");
        Check("\"to_q\"\n  ]", "\"to_q\"\n  ", "not valid JSON");
    }

    [Fact]
    public void FoldersResolveToTheirLoraFileOldNamesIncluded()
    {
        using var unet = BaseUnet();
        using var lora = LoraNetwork.Attach(unet, new LoraConfig(), new Generator(1));
        var newRun = Path.Combine(_tmp, "new");
        RunFolderLora.Write(newRun, lora, null);
        Assert.Equal(Path.Combine(newRun, RunFolderLora.DiffusersName), RunFolderLora.ResolveFile(newRun));
        var oldRun = Path.Combine(_tmp, "old");
        Directory.CreateDirectory(oldRun);
        lora.SaveKohya(Path.Combine(oldRun, RunFolderLora.LegacyKohyaName));
        Assert.Equal(Path.Combine(oldRun, RunFolderLora.LegacyKohyaName), RunFolderLora.ResolveFile(oldRun));
        lora.SavePeft(Path.Combine(oldRun, RunFolderLora.LegacyPeftName));
        Assert.Equal(Path.Combine(oldRun, RunFolderLora.LegacyPeftName), RunFolderLora.ResolveFile(oldRun));
        using (var fromOld = LoraNetwork.Load(unet, oldRun)) Assert.Equal(lora.Adapters.Count, fromOld.Adapters.Count);
        var empty = Directory.CreateDirectory(Path.Combine(_tmp, "empty")).FullName;
        var e = Assert.Throws<InvalidInputException>(() => RunFolderLora.ResolveFile(empty));
        Assert.Contains(RunFolderLora.DiffusersName, e.Message);

        // A PEFT adapter file without its config has no alpha: an error, not a silent alpha = r.
        var bare = Directory.CreateDirectory(Path.Combine(_tmp, "bare")).FullName;
        File.Copy(Path.Combine(newRun, PeftAdapterConfig.WeightsName), Path.Combine(bare, PeftAdapterConfig.WeightsName));
        e = Assert.Throws<InvalidInputException>(() => LoraNetwork.Load(unet, bare));
        Assert.Contains(PeftAdapterConfig.FileName, e.Message);
    }
}
