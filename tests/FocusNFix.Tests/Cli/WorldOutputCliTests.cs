using FocusNFix.ShapesWorld;
using Xunit;

namespace FocusNFix.Tests.Cli;

/// <summary>
/// A user's files stay theirs (issue 10, item 9): the <c>fnf world</c> commands write under runs/world by default,
/// never into models/, and refuse to replace files without --overwrite, before doing any work; <c>fnf demo</c> has
/// working --resume and --overwrite. Each command runs with a fresh temporary folder as its current directory, where
/// its relative defaults land.
/// </summary>
public class WorldOutputCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-cli-outputs-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    static string Tokenizer => Golden.Case("clip_tokenizer");
    string At(string rel) => Path.Combine(_tmp, rel);

    /// <summary>Exit code 2 and one stderr line that starts with "error: " and names <paramref name="what"/>.</summary>
    static string AssertRefused((int Code, string Stdout, string Stderr) r, string what)
    {
        Assert.True(r.Code == 2, $"exit {r.Code}\n{r.Stdout}\n{r.Stderr}");
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, r.Stderr);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(what, lines[0]);
        return lines[0];
    }

    /// <summary>Two test prompts, so a base model's final evaluation takes seconds.</summary>
    string TinyWorld() => FocusNFix.Tests.ShapesWorld.TinyWorld.Write(At("tiny-world.json"), trainPrompts: 1000, testPrompts: 2);

    [Fact]
    public void SpecWritesUnderRunsByDefaultAndReplacesOnlyWithOverwrite()
    {
        var r = CliProcess.RunIn(_tmp, "world", "spec");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var spec = At("runs/world/world.json");
        Assert.Equal("runs/world/world.json", r.Stdout.Trim());
        Assert.Equal(32, WorldSpec.Load(spec).ImageSize);
        Assert.False(Directory.Exists(At("models")));

        var before = File.ReadAllBytes(spec);
        var line = AssertRefused(CliProcess.RunIn(_tmp, "world", "spec", "--size", "48"), "runs/world/world.json");
        Assert.Contains("--overwrite", line);
        Assert.Equal(before, File.ReadAllBytes(spec));

        var again = CliProcess.RunIn(_tmp, "world", "spec", "--size", "48", "--overwrite");
        Assert.True(again.ExitCode == 0, again.Stdout + again.Stderr);
        Assert.Equal(48, WorldSpec.Load(spec).ImageSize);
        Assert.Empty(Directory.GetFiles(At("runs/world"), "*.tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public void TrainBaseWritesUnderRunsWithItsWorldAndRefusesAnOccupiedOutBeforeTraining()
    {
        var world = TinyWorld();
        string[] Args(params string[] extra) => new[] { "world", "train-base", "--world", world, "--tokenizer", Tokenizer, "--steps", "1", "--batch", "2", "--eval-seeds", "1", "--logdir", "tb" }.Concat(extra).ToArray();
        var r = CliProcess.RunIn(_tmp, Args());
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var model = At("runs/world/base");
        Assert.True(File.Exists(Path.Combine(model, "model_index.json")));
        Assert.Contains("| images | 2 |", File.ReadAllText(Path.Combine(model, "MODEL_CARD.md")));
        // The trainer and fnf eval find a model's world beside its folder, so train-base put a copy there.
        Assert.Equal(WorldSpec.Load(world), WorldSpec.Load(At("runs/world/world.json")));
        Assert.False(Directory.Exists(At("models")));
        Assert.Single(Directory.GetFiles(At("tb")));

        var card = File.ReadAllText(Path.Combine(model, "MODEL_CARD.md"));
        AssertRefused(CliProcess.RunIn(_tmp, Args()), "runs/world/base: already exists");
        Assert.Equal(card, File.ReadAllText(Path.Combine(model, "MODEL_CARD.md")));
        Assert.Single(Directory.GetFiles(At("tb")));  // refused before training: no second TensorBoard file

        // --overwrite replaces a pipeline folder, never a folder of other things.
        Directory.CreateDirectory(At("notes"));
        File.WriteAllText(At("notes/todo.txt"), "mine");
        AssertRefused(CliProcess.RunIn(_tmp, Args("--out", "notes", "--overwrite")), "notes: not a pipeline folder");
        Assert.Equal("mine", File.ReadAllText(At("notes/todo.txt")));

        // A model written beside a different world.json would be read against the wrong world.
        AssertRefused(CliProcess.RunIn(_tmp, "world", "train-base", "--tokenizer", Tokenizer, "--steps", "1", "--out", "runs/world/base2"), "a different world is beside");
        Assert.False(Directory.Exists(At("runs/world/base2")));

        var again = CliProcess.RunIn(_tmp, Args("--overwrite", "--seed", "1"));
        Assert.True(again.ExitCode == 0, again.Stdout + again.Stderr);
        Assert.Contains("- seed 1;", File.ReadAllText(Path.Combine(model, "MODEL_CARD.md")));
        Assert.Empty(Directory.GetDirectories(At("runs/world"), "base.tmp-*"));
    }

    [Fact]
    public void TrainJudgeAndTrainRewardRefuseExistingModelFilesBeforeTraining()
    {
        string[] judge = { "world", "train-judge", "--steps", "1", "--logdir", "tb" };
        var r = CliProcess.RunIn(_tmp, judge);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        foreach (var f in new[] { "model.safetensors", "config.json", "world.json", "MODEL_CARD.md" })
            Assert.True(File.Exists(At($"runs/world/judge/{f}")), f);
        var weights = File.ReadAllBytes(At("runs/world/judge/model.safetensors"));
        AssertRefused(CliProcess.RunIn(_tmp, judge.Append("--seed").Append("1").ToArray()), "runs/world/judge/model.safetensors: already exists");
        Assert.Equal(weights, File.ReadAllBytes(At("runs/world/judge/model.safetensors")));

        // The reward's default folder holds a file it would write: refused before the base model is even opened
        // (this --base does not exist, and the error is about the output).
        Directory.CreateDirectory(At("runs/world/reward-hazard"));
        File.WriteAllText(At("runs/world/reward-hazard/config.json"), "mine");
        AssertRefused(CliProcess.RunIn(_tmp, "world", "train-reward", "--defect", "hazard", "--base", "no-such-base"), "runs/world/reward-hazard/config.json: already exists");
        Assert.Equal("mine", File.ReadAllText(At("runs/world/reward-hazard/config.json")));
        Assert.False(Directory.Exists(At("models")));
    }

    [Fact]
    public void RenderRefusesToReplaceScenesWithoutOverwrite()
    {
        var r = CliProcess.RunIn(_tmp, "world", "render", "--count", "2", "--out", "scenes");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        var png = File.ReadAllBytes(At("scenes/0.png"));
        AssertRefused(CliProcess.RunIn(_tmp, "world", "render", "--count", "2", "--seed", "1", "--out", "scenes"), "scenes/1.png: already exists");
        Assert.Equal(2, File.ReadAllLines(At("scenes/scenes.jsonl")).Length);
        var again = CliProcess.RunIn(_tmp, "world", "render", "--count", "2", "--seed", "1", "--out", "scenes", "--overwrite");
        Assert.True(again.ExitCode == 0, again.Stdout + again.Stderr);
        Assert.Equal(png, File.ReadAllBytes(At("scenes/0.png")));
        Assert.Contains("\"seed\":2", File.ReadAllText(At("scenes/scenes.jsonl")));
    }

    [Fact]
    public void DemoAdvertisesResumeAndOverwriteAndRefusesAnEarlierOutputWithoutThem()
    {
        var help = CliProcess.RunIn(_tmp, "demo", "--help");
        Assert.Contains("--resume", help.Stdout);
        Assert.Contains("--overwrite", help.Stdout);

        var models = Path.Combine(Golden.Root, "models", "shapesworld");
        AssertRefused(CliProcess.RunIn(_tmp, "demo", "--models", models, "--resume", "--overwrite"), "--resume and --overwrite");
        Directory.CreateDirectory(At("runs/demo"));
        File.WriteAllText(At("runs/demo/report.json"), "mine");
        var line = AssertRefused(CliProcess.RunIn(_tmp, "demo", "--models", models), "runs/demo/report.json");
        Assert.Contains("--resume", line);
        Assert.Contains("--overwrite", line);
        Assert.Equal("mine", File.ReadAllText(At("runs/demo/report.json")));
        Assert.False(Directory.Exists(At("runs/demo/runs")));
    }

    [Fact]
    public void ADemoEvaluationPartNeedsEveryMethodTrainedAndIsNotAdvertised()
    {
        // --eval-shard is what fnf demo --jobs N runs in its children; on a folder with nothing trained it names the first run folder and trains nothing.
        Assert.DoesNotContain("--eval-shard", CliProcess.RunIn(_tmp, "demo", "--help").Stdout);
        var models = Path.Combine(Golden.Root, "models", "shapesworld");
        var line = AssertRefused(CliProcess.RunIn(_tmp, "demo", "--models", models, "--out", "d", "--eval-shard", "0/2"), "not finished training");
        Assert.Contains(Path.Combine("d", "runs", "draft"), line);
        Assert.False(Directory.Exists(At("d/runs/draft")));
        AssertRefused(CliProcess.RunIn(_tmp, "demo", "--models", models, "--out", "d", "--eval-shard", "2/2"), "--eval-shard");
    }
}
