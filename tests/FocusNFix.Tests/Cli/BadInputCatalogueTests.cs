using Xunit;

namespace FocusNFix.Tests.Cli;

/// <summary>
/// One bad input of the catalogue: the fnf arguments (given the shared files and the case's output folder) and the
/// text the error line must contain, naming the offending file, key or value.
/// </summary>
public sealed record BadInput(string Name, Func<BadInputFiles, string, string[]> Args, params string[] Names);

/// <summary>
/// Issue 10's bad-input catalogue: every class of bad input, through every command, run on the real fnf as a child
/// process. Each must end with exit code 2 and exactly one stderr line, starting with "error:" and naming what was
/// wrong, and leave no file behind: nothing new (no output, no *.tmp) and nothing changed in the case's folder or in
/// the shared inputs. Every error comes before model work, so the whole catalogue takes seconds per case at most.
/// </summary>
public sealed class BadInputCatalogueTests : IClassFixture<BadInputFiles>
{
    readonly BadInputFiles _files;
    public BadInputCatalogueTests(BadInputFiles files) => _files = files;

    static string[] A(params string[] args) => args;
    static string P => BadInputFiles.Pipeline;
    static string Reward => "region-reward-model:" + BadInputFiles.RewardHazard;
    static string Heat => "reward-model:" + BadInputFiles.RewardHazard;

    static string[] Sample(string model, string outDir, params string[] more) => A("sample", "--model", model, "--prompt", "a red circle", "--out", outDir).Concat(more).ToArray();
    static string[] Eval(BadInputFiles f, string outDir, params string[] more) =>
        A("eval", "--model", P, "--reward", Reward, "--heatmap", Heat, "--prompts", f.Prompts, "--steps", "2", "--out", outDir).Concat(more).ToArray();
    static string[] Heatmap(string outDir, params string[] more) => A("heatmap", "--model", P, "--prompt", "a red circle", "--steps", "2", "--out", outDir).Concat(more).ToArray();

    /// <summary>A training config file written into the case's folder (beside its output folder).</summary>
    static string Config(string outDir, string json)
    {
        var path = Path.Combine(Path.GetDirectoryName(outDir)!, "config.json");
        // The case folder's snapshot is taken after the arguments are built, so this file is not "left behind".
        File.WriteAllText(path, json);
        return path;
    }

    static string[] Train(string outDir, string json) => A("train", "--config", Config(outDir, json));

    public static readonly BadInput[] Catalogue =
    {
        // Command-line values (sample).
        new("sample-steps-negative", (f, o) => Sample(P, o, "--steps", "-3"), "--steps", "-3"),
        new("sample-steps-not-a-number", (f, o) => Sample(P, o, "--steps", "ten"), "--steps", "ten"),
        new("sample-guidance-nan", (f, o) => Sample(P, o, "--guidance", "NaN"), "--guidance", "NaN"),
        new("sample-guidance-infinity", (f, o) => Sample(P, o, "--guidance", "Infinity"), "--guidance", "Infinity"),
        new("sample-eta-above-one", (f, o) => Sample(P, o, "--eta", "2"), "--eta", "2"),
        new("sample-unknown-scheduler", (f, o) => Sample(P, o, "--scheduler", "warp-drive"), "warp-drive"),
        new("sample-height-not-multiple-of-8", (f, o) => Sample(P, o, "--height", "13"), "--height", "13"),
        new("sample-width-too-large", (f, o) => Sample(P, o, "--width", "100000"), "--width", "100000"),
        new("sample-clip-skip-negative", (f, o) => Sample(P, o, "--clip-skip", "-1"), "--clip-skip", "-1"),
        new("sample-batch-zero", (f, o) => Sample(P, o, "--batch", "0"), "--batch", "0"),
        new("sample-unknown-option", (f, o) => Sample(P, o, "--colour", "red"), "--colour"),
        new("sample-device-tpu", (f, o) => Sample(P, o, "--device", "tpu"), "--device", "tpu"),
        new("sample-dtype-int8", (f, o) => Sample(P, o, "--dtype", "int8"), "--dtype", "int8"),
        new("sample-no-prompt", (f, o) => A("sample", "--model", P, "--out", o), "--prompt"),
        new("sample-lora-scale-nan", (f, o) => Sample(P, o, "--lora", f.GoodLora, "--lora-scale", "NaN"), "--lora-scale", "NaN"),
        // Outputs where a folder is expected.
        new("sample-out-is-a-file", (f, o) => Sample(P, f.AFile), "a-file.txt", "is a file"),
        new("sample-out-below-a-file", (f, o) => Sample(P, Path.Combine(f.AFile, "images")), "a-file.txt", "is a file"),
        new("eval-out-is-a-file", (f, o) => Eval(f, f.AFile), "a-file.txt", "is a file"),
        new("heatmap-out-is-a-file", (f, o) => Heatmap(f.AFile, "--heatmap", Heat), "a-file.txt", "is a file"),
        // Model folders and their files.
        new("model-missing", (f, o) => Sample(f.In("no-such-model"), o), "no-such-model", "not found"),
        new("model-is-a-file", (f, o) => Sample(f.AFile, o), "a-file.txt", "is a file"),
        new("model-is-a-fifo", (f, o) => Sample(f.Fifo, o), "fifo", "FIFO"),
        new("model-is-a-symlink-loop", (f, o) => Sample(f.Loop, o), "loop-a", "symbolic link loop"),
        new("unet-config-zero-channels", (f, o) => Sample(f.BrokenPipeline("unet-zero-channels"), o), "unet/config.json", "block_out_channels"),
        new("unet-config-negative-layers", (f, o) => Sample(f.BrokenPipeline("unet-negative-layers"), o), "unet/config.json", "layers_per_block"),
        new("unet-config-nan-epsilon", (f, o) => Sample(f.BrokenPipeline("unet-nan-eps"), o), "unet/config.json", "norm_eps"),
        new("vae-config-negative-groups", (f, o) => Sample(f.BrokenPipeline("vae-negative-groups"), o), "vae/config.json", "norm_num_groups"),
        new("vae-config-zero-latents", (f, o) => Sample(f.BrokenPipeline("vae-zero-latents"), o), "vae/config.json", "latent_channels"),
        new("text-encoder-config-nan-epsilon", (f, o) => Sample(f.BrokenPipeline("text-nan-eps"), o), "text_encoder/config.json", "layer_norm_eps"),
        new("text-encoder-config-zero-hidden", (f, o) => Sample(f.BrokenPipeline("text-zero-hidden"), o), "text_encoder/config.json", "hidden_size"),
        new("component-missing", (f, o) => Sample(f.BrokenPipeline("no-vae"), o), "pipe-no-vae/vae", "not found"),
        new("weights-missing", (f, o) => Sample(f.BrokenPipeline("no-unet-weights"), o), "diffusion_pytorch_model.safetensors", "not found"),
        new("model-index-missing", (f, o) => Sample(f.BrokenPipeline("no-index"), o), "model_index.json", "not found"),
        new("model-index-fifo", (f, o) => Sample(f.BrokenPipeline("index-fifo"), o), "model_index.json", "FIFO"),
        new("unet-config-symlink-loop", (f, o) => Sample(f.BrokenPipeline("unet-config-loop"), o), "unet/config.json", "symbolic link loop"),
        new("unet-config-is-a-folder", (f, o) => Sample(f.BrokenPipeline("unet-config-folder"), o), "unet/config.json", "is a folder"),
        new("unet-weights-fifo", (f, o) => Sample(f.BrokenPipeline("unet-weights-fifo"), o), "diffusion_pytorch_model.safetensors", "FIFO"),
        new("unet-weights-truncated", (f, o) => Sample(f.BrokenPipeline("unet-weights-truncated"), o), "diffusion_pytorch_model.safetensors", "truncated"),
        new("unet-weights-garbage", (f, o) => Sample(f.BrokenPipeline("unet-weights-garbage"), o), "diffusion_pytorch_model.safetensors", "invalid safetensors"),
        new("tokenizer-vocab-is-a-device", (f, o) => Sample(f.BrokenPipeline("vocab-device"), o), "vocab.json", "character device"),
        new("scheduler-config-not-json", (f, o) => Sample(f.BrokenPipeline("scheduler-not-json"), o), "scheduler_config.json", "not valid JSON"),
        // LoRA files (checked when opened, before the model loads).
        new("lora-fifo", (f, o) => Sample(P, o, "--lora", f.Fifo), "fifo", "FIFO"),
        new("lora-symlink-loop", (f, o) => Sample(P, o, "--lora", f.Loop), "loop-a", "symbolic link loop"),
        new("lora-character-device", (f, o) => Sample(P, o, "--lora", "/dev/zero"), "/dev/zero", "character device"),
        new("lora-truncated", (f, o) => Sample(P, o, "--lora", f.In("lora-truncated.safetensors")), "lora-truncated.safetensors", "truncated"),
        new("lora-garbage", (f, o) => Sample(P, o, "--lora", f.In("garbage.dat")), "garbage.dat", "invalid safetensors"),
        new("lora-alpha-nan", (f, o) => Sample(P, o, "--lora", f.In("lora-alpha-nan.safetensors")), "lora-alpha-nan.safetensors", "alpha NaN"),
        new("lora-alpha-negative", (f, o) => Sample(P, o, "--lora", f.In("lora-alpha-negative.safetensors")), "lora-alpha-negative.safetensors", "alpha -4"),
        new("lora-alpha-zero", (f, o) => Sample(P, o, "--lora", f.In("lora-alpha-zero.safetensors")), "lora-alpha-zero.safetensors", "alpha 0"),
        new("lora-alpha-not-a-number", (f, o) => Sample(P, o, "--lora", f.In("lora-alpha-text.safetensors")), "lora-alpha-text.safetensors", "four"),
        new("lora-rank-zero", (f, o) => Sample(P, o, "--lora", f.In("lora-rank-zero.safetensors")), "lora-rank-zero.safetensors", "rank 0"),
        new("lora-rank-metadata-disagrees", (f, o) => Sample(P, o, "--lora", f.In("lora-rank-metadata.safetensors")), "lora-rank-metadata.safetensors", "lora_rank"),
        new("lora-ranks-differ", (f, o) => Sample(P, o, "--lora", f.In("lora-ranks-differ.safetensors")), "lora-ranks-differ.safetensors", "ranks differ"),
        new("lora-nan-weights", (f, o) => Sample(P, o, "--lora", f.In("lora-nan-weights.safetensors")), "lora-nan-weights.safetensors", "NaN"),
        new("lora-folder-without-lora", (f, o) => Sample(P, o, "--lora", f.In("empty-folder")), "empty-folder", "no LoRA file"),
        new("lora-pickle", (f, o) => Sample(P, o, "--lora", f.In("lora.pt")), "lora.pt", "pickled"),
        new("lora-for-another-model", (f, o) => Sample(P, o, "--lora", BadInputFiles.OtherModelLora, "--steps", "1"), "lora_peft_format.safetensors", "different model"),
        // PNGs for --from-png.
        new("png-fifo", (f, o) => A("sample", "--from-png", f.Fifo, "--out", o), "fifo", "FIFO"),
        new("png-not-a-png", (f, o) => A("sample", "--from-png", f.Png("text"), "--out", o), "text.png", "not a PNG"),
        new("png-truncated", (f, o) => A("sample", "--from-png", f.Png("truncated"), "--out", o), "truncated.png", "truncated"),
        new("png-without-metadata", (f, o) => A("sample", "--from-png", f.Png("no-metadata"), "--out", o), "no-metadata.png", "focusnfix"),
        new("png-metadata-not-json", (f, o) => A("sample", "--from-png", f.Png("metadata-not-json"), "--out", o), "metadata-not-json.png", "not valid JSON"),
        new("png-metadata-steps-negative", (f, o) => A("sample", "--from-png", f.Png("steps-negative"), "--out", o), "steps-negative.png", "'steps' = -4"),
        new("png-metadata-height-13", (f, o) => A("sample", "--from-png", f.Png("height-13"), "--out", o), "height-13.png", "'height' = 13"),
        new("png-with-generation-flags", (f, o) => A("sample", "--from-png", f.Png("good"), "--steps", "3", "--out", o), "good.png", "--steps"),
        // Training configs.
        new("train-section-null", (f, o) => Train(o, "{\"train\": null}"), "config.json", "train = null"),
        new("train-steps-string", (f, o) => Train(o, "{\"train\": {\"steps\": \"ten\"}}"), "train.steps", "\"ten\"", "an integer"),
        new("train-steps-negative", (f, o) => Train(o, "{\"train\": {\"steps\": -5}}"), "train.steps", "-5"),
        new("train-batch-size-zero", (f, o) => Train(o, "{\"train\": {\"batch_size\": 0}}"), "train.batch_size", "0"),
        new("train-device-tpu", (f, o) => Train(o, "{\"device\": \"tpu\"}"), "device", "tpu"),
        new("train-learning-rate-nan", (f, o) => Train(o, "{\"optimizer\": {\"learning_rate\": NaN}}"), "optimizer.learning_rate", "NaN"),
        new("train-learning-rate-infinity", (f, o) => Train(o, "{\"optimizer\": {\"learning_rate\": \"Infinity\"}}"), "optimizer.learning_rate", "Infinity"),
        new("train-lambda-negative", (f, o) => Train(o, "{\"constraint\": {\"lambda\": -1}}"), "constraint.lambda", "-1"),
        new("train-mask-threshold-nan", (f, o) => Train(o, "{\"mask\": {\"threshold\": NaN}}"), "mask.threshold", "NaN"),
        new("train-unknown-key", (f, o) => Train(o, "{\"learning_rate\": 0.01}"), "unknown key 'learning_rate'"),
        new("train-unknown-nested-key", (f, o) => Train(o, "{\"lora\": {\"dropout\": 0.1}}"), "unknown key 'lora.dropout'"),
        new("train-top-level-array", (f, o) => Train(o, "[1, 2]"), "config.json", "[1,2]"),
        new("train-reward-null", (f, o) => Train(o, "{\"rewards\": [null]}"), "rewards[0] = null"),
        new("train-reward-type-unknown", (f, o) => Train(o, "{\"rewards\": [{\"type\": \"vibes\", \"path\": \"x\"}]}"), "rewards[0].type", "vibes"),
        new("train-target-module-null", (f, o) => Train(o, "{\"lora\": {\"target_modules\": [null]}}"), "lora.target_modules[0] = null"),
        new("train-model-null", (f, o) => Train(o, "{\"model\": null}"), "model = null"),
        new("train-unknown-scheduler", (f, o) => Train(o, "{\"sampling\": {\"scheduler\": \"warp-drive\"}}"), "sampling.scheduler", "warp-drive"),
        new("train-config-not-json", (f, o) => Train(o, "{\"seed\": 1,"), "config.json", "not valid JSON"),
        new("train-config-fifo", (f, o) => A("train", "--config", f.Fifo), "fifo", "FIFO"),
        new("train-config-symlink-loop", (f, o) => A("train", "--config", f.Loop), "loop-a", "symbolic link loop"),
        new("train-config-is-a-folder", (f, o) => A("train", "--config", f.Inputs), "inputs", "is a folder"),
        new("train-config-missing", (f, o) => A("train", "--config", f.In("no-such.json")), "no-such.json", "not found"),
        new("train-without-config", (f, o) => A("train"), "--config"),
        // fnf eval: LoRAs, logs and values checked before anything is sampled.
        new("eval-lora-fifo", (f, o) => Eval(f, o, "--lora", "fix=" + f.Fifo), "fifo", "FIFO"),
        new("eval-lora-bad-alpha", (f, o) => Eval(f, o, "--lora", "fix=" + f.In("lora-alpha-negative.safetensors")), "lora-alpha-negative.safetensors", "alpha -4"),
        new("eval-lora-for-another-model", (f, o) => Eval(f, o, "--lora", "fix=" + BadInputFiles.OtherModelLora), "lora_peft_format.safetensors", "different model"),
        new("eval-lora-without-name", (f, o) => Eval(f, o, "--lora", f.GoodLora), "good-lora.safetensors", "NAME=FILE"),
        new("eval-training-log-bad-line", (f, o) => Eval(f, o, "--training-log", "fix=" + f.In("bad-log.jsonl")), "bad-log.jsonl", "line 1"),
        new("eval-training-log-name-twice", (f, o) => Eval(f, o, "--training-log", "fix=" + f.In("bad-log.jsonl"), "--training-log", "fix=" + f.In("other.jsonl")), "fix", "twice"),
        new("eval-training-log-missing", (f, o) => Eval(f, o, "--training-log", "fix=" + f.In("no-such-log.jsonl")), "no-such-log.jsonl", "not found"),
        new("eval-prompt-file-fifo", (f, o) => A("eval", "--model", P, "--reward", Reward, "--heatmap", Heat, "--prompts", f.Fifo, "--out", o), "fifo", "FIFO"),
        new("eval-seeds-zero", (f, o) => Eval(f, o, "--seeds", "0"), "--seeds", "0"),
        new("eval-guidance-nan", (f, o) => Eval(f, o, "--guidance", "NaN"), "--guidance", "NaN"),
        // fnf heatmap.
        new("heatmap-unknown-source", (f, o) => Heatmap(o, "--heatmap", "crystal-ball:x"), "crystal-ball"),
        new("heatmap-boxes-fifo", (f, o) => Heatmap(o, "--heatmap", "boxes:" + f.Fifo), "fifo", "FIFO"),
        new("heatmap-onnx-garbage", (f, o) => Heatmap(o, "--heatmap", "onnx:" + f.In("garbage.dat")), "garbage.dat", "ONNX"),
        new("heatmap-mask-folder-is-a-file", (f, o) => Heatmap(o, "--heatmap", "mask-folder:" + f.AFile), "a-file.txt", "mask folder"),
        new("heatmap-threshold-nan", (f, o) => Heatmap(o, "--heatmap", Heat, "--threshold", "NaN"), "threshold", "NaN"),
        new("heatmap-reward-model-fifo", (f, o) => Heatmap(o, "--heatmap", "reward-model:" + f.Fifo), "fifo", "FIFO"),
        // fnf check.
        new("check-folder-missing", (f, o) => A("check", f.In("no-such-case")), "no-such-case", "not found"),
        new("check-fifo", (f, o) => A("check", f.Fifo), "fifo", "FIFO"),
        new("check-atol-nan", (f, o) => A("check", Golden.Case("scheduler_ddim"), "--atol", "NaN"), "atol", "NaN"),
        new("check-unknown-kind", (f, o) => A("check", Golden.Case("scheduler_ddim"), "--kind", "teapot"), "teapot"),
        new("check-inputs-truncated", (f, o) => A("check", f.CheckCase), "inputs.safetensors", "truncated"),
        // fnf world.
        new("world-file-fifo", (f, o) => A("world", "prompts", "--world", f.Fifo), "fifo", "FIFO"),
        new("world-file-not-an-object", (f, o) => A("world", "prompts", "--world", f.In("world-array.json")), "world-array.json"),
        new("world-unknown-split", (f, o) => A("world", "prompts", "--split", "holdout"), "holdout"),
        new("world-spec-size-negative", (f, o) => A("world", "spec", "--size", "-4", "--out", Path.Combine(o, "world.json")), "-4"),
        new("world-render-count-negative", (f, o) => A("world", "render", "--count", "-2", "--out", o), "--count", "-2"),
        new("world-eval-seeds-zero", (f, o) => A("world", "eval", "--model", P, "--seeds", "0"), "--seeds", "0"),
        new("world-eval-model-fifo", (f, o) => A("world", "eval", "--model", f.Fifo), "fifo", "FIFO"),
        new("world-train-reward-unknown-defect", (f, o) => A("world", "train-reward", "--defect", "rust", "--out", o), "rust"),
        // fnf bench.
        new("bench-batch-zero", (f, o) => A("bench", "--model", P, "--batch", "0"), "--batch", "0"),
        new("bench-repeats-negative", (f, o) => A("bench", "--model", P, "--repeats", "-1"), "--repeats", "-1"),
        new("bench-guidance-nan", (f, o) => A("bench", "--model", P, "--guidance", "NaN"), "--guidance", "NaN"),
        new("bench-model-symlink-loop", (f, o) => A("bench", "--model", f.Loop), "loop-a", "symbolic link loop"),
        // The command line itself.
        new("no-command", (f, o) => A(), "command"),
        new("unknown-command", (f, o) => A("finetune"), "finetune"),
    };

    public static IEnumerable<object[]> Names => Catalogue.Select(c => new object[] { c.Name });

    [Fact]
    public void CatalogueCoversEveryCommandWithSixtyCasesOrMore()
    {
        Assert.True(Catalogue.Length >= 60, $"{Catalogue.Length} cases");
        Assert.Equal(Catalogue.Length, Catalogue.Select(c => c.Name).Distinct().Count());
        var scratch = Directory.CreateDirectory(Path.Combine(_files.Root, "listing")).FullName;
        var commands = Catalogue.Select(c => c.Args(_files, Path.Combine(scratch, "out")).FirstOrDefault() ?? "").ToHashSet();
        foreach (var command in new[] { "sample", "train", "eval", "heatmap", "check", "world", "bench" }) Assert.Contains(command, commands);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void RefusedWithOneErrorLineAndExitCodeTwo(string name)
    {
        var c = Catalogue.Single(x => x.Name == name);
        var caseDir = Path.Combine(_files.Root, "cases", name);
        Directory.CreateDirectory(caseDir);
        var outDir = Path.Combine(caseDir, "out");
        var args = c.Args(_files, outDir);
        var before = FileTree.Snapshot(_files.Root);

        var (code, stdout, stderr) = CliProcess.RunIn(caseDir, TimeSpan.FromSeconds(60), args);

        var shown = $"fnf {string.Join(" ", args)}\nexit code {code}\nstderr:\n{stderr}\nstdout:\n{stdout}";
        Assert.True(code == 2, $"expected exit code 2\n{shown}");
        var lines = stderr.Trim().Split('\n');
        Assert.True(lines.Length == 1, $"expected exactly one stderr line\n{shown}");
        Assert.StartsWith("error: ", lines[0]);
        foreach (var expected in c.Names) Assert.True(lines[0].Contains(expected, StringComparison.Ordinal), $"the error line does not name '{expected}'\n{shown}");
        var after = FileTree.Snapshot(_files.Root);
        Assert.Empty(after.Keys.Where(k => k.EndsWith(".tmp", StringComparison.Ordinal)));
        Assert.True(FileTree.Same(before, after, out var difference), $"files changed: {difference}\n{shown}");
    }
}
