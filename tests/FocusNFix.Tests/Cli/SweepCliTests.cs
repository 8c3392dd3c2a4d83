using System.Text.Json;
using FocusNFix.Experiments;
using Xunit;

namespace FocusNFix.Tests.Cli;

/// <summary>A tiny sweep end to end through <c>fnf sweep</c>: trained and training-free settings, the report, and --resume reusing finished work.</summary>
public class SweepCliTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-sweep-cli-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    string WriteConfig(string name, double lambda)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, $$"""
            { "models": {{JsonSerializer.Serialize(Path.Combine(Golden.Root, "models", "shapesworld"))}}, "output_dir": {{JsonSerializer.Serialize(Path.Combine(_dir, "out"))}},
              "defect": "hazard", "split": "val", "prompt_limit": 2, "eval_seeds": 1, "train_seeds": [0, 1], "steps": 1, "pool_limit": 2,
              "concept": "hazard mark", "bootstrap_replicates": 200,
              "focus_n_fix": { "lambdas": [{{lambda}}], "learning_rates": [0.002] },
              "sld": { "presets": ["medium"], "guidance_scale": 2 } }
            """);
        return path;
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void ASweepRunsReportsAndResumesWithoutRedoingWork()
    {
        var config = WriteConfig("sweep.json", 1);
        var timeout = TimeSpan.FromMinutes(8);
        var (code, stdout, stderr) = CliProcess.RunIn(null, timeout, "sweep", "--config", config);
        Assert.True(code == 0, stdout + stderr);
        var outDir = Path.Combine(_dir, "out");
        var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, SweepReport.JsonFile))).RootElement;
        var points = report.GetProperty("points").EnumerateArray().ToList();
        Assert.Equal(new[] { "focus-n-fix", "sld" }, points.Select(p => p.GetProperty("method").GetString()));
        foreach (var p in points)
        {
            var rate = p.GetProperty("figures").GetProperty("oracle_hazard");
            Assert.InRange(rate.GetProperty("value").GetDouble(), 0, 1);
            Assert.True(rate.GetProperty("low").GetDouble() <= rate.GetProperty("value").GetDouble());
            Assert.True(p.GetProperty("figures").TryGetProperty("psnr_outside", out _));
        }
        // Two training seeds x two prompts: the trained setting's figures come from 4 images, the sampling one's from 2.
        Assert.Equal(4, points[0].GetProperty("figures").GetProperty("oracle_hazard").GetProperty("count").GetInt32());
        Assert.Equal(2, points[1].GetProperty("figures").GetProperty("oracle_hazard").GetProperty("count").GetInt32());
        Assert.True(File.Exists(Path.Combine(outDir, SweepReport.PlotFolder, "front_psnr_outside.png")));
        var md = File.ReadAllText(Path.Combine(outDir, SweepReport.MarkdownFile));
        Assert.Contains("| focus-n-fix | lambda=1, lr=0.002 * |", md);  // the only setting, so the chosen one
        // The verdict box comes first and says plainly there is nothing to compare against (no global constraint swept).
        Assert.StartsWith("> **Verdict:** **No verdict**", md.Split('\n').First(l => l.StartsWith('>')));
        Assert.Equal(SweepVerdict.NotComparable, report.GetProperty("verdict").GetProperty("outcome").GetString());
        Assert.Contains($"]({SweepReport.FullMarkdownFile})", md);
        Assert.Contains("oracle_hazard_residue_share", File.ReadAllText(Path.Combine(outDir, SweepReport.FullMarkdownFile)));
        Assert.Contains("## Glossary", md);
        Assert.Contains("| `psnr_outside` | ↑ | dB |", md);
        Assert.Contains("- torch_threads: `", md);
        Assert.Contains("\"learning_rates\": [", md);  // the sweep's configuration

        // Again without a flag: refused, nothing touched.
        var figures = Path.Combine(outDir, "evals", "focus-n-fix_lambda1_lr0.002", SweepRun.FiguresFile);
        var stamp = File.GetLastWriteTimeUtc(figures);
        (code, _, stderr) = CliProcess.RunIn(null, timeout, "sweep", "--config", config);
        Assert.Equal(2, code);
        Assert.Contains("--resume", stderr);

        // --resume: nothing trained or evaluated again, same report.
        var before = File.ReadAllText(Path.Combine(outDir, SweepReport.JsonFile));
        (code, stdout, stderr) = CliProcess.RunIn(null, timeout, "sweep", "--config", config, "--resume");
        Assert.True(code == 0, stdout + stderr);
        Assert.DoesNotContain("training seed", stdout);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(figures));
        Assert.Equal(Without(before, "command"), Without(File.ReadAllText(Path.Combine(outDir, SweepReport.JsonFile)), "command"));

        // The chosen settings once on test: the val sweep's runs are evaluated, nothing is trained, the val folder is untouched.
        (code, stdout, stderr) = CliProcess.RunIn(null, timeout, "sweep", "--final-from", outDir);
        Assert.True(code == 0, stdout + stderr);
        Assert.DoesNotContain("training seed", stdout);
        var test = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir + "-test", SweepReport.JsonFile))).RootElement;
        Assert.Equal("test", test.GetProperty("split").GetString());
        Assert.Empty(test.GetProperty("chosen").EnumerateObject());
        Assert.False(Directory.Exists(Path.Combine(outDir + "-test", "runs")));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(figures));
        Directory.Delete(outDir + "-test", true);

        // --resume with another grid is refused: the folder's runs are not that grid.
        var other = WriteConfig("other.json", 3);
        (code, _, stderr) = CliProcess.RunIn(null, timeout, "sweep", "--config", other, "--resume");
        Assert.Equal(2, code);
        Assert.Contains("other settings", stderr);
    }

    static string Without(string json, string key) =>
        string.Join("\n", json.Split('\n').Where(l => !l.TrimStart().StartsWith($"\"{key}\"", StringComparison.Ordinal)));

    [Fact]
    public void WriteConfigWritesTheBuiltInGridAndRefusesToReplaceAFile()
    {
        var target = Path.Combine(_dir, "grid.json");
        var models = Path.Combine(Golden.Root, "models", "shapesworld");
        var (code, stdout, stderr) = CliProcess.Run("sweep", "--defect", "glitch", "--models", models, "--write-config", target);
        Assert.True(code == 0, stdout + stderr);
        var c = SweepConfig.Load(target);
        Assert.Equal("glitch", c.Defect);
        Assert.NotNull(c.FocusNFix);
        (code, _, stderr) = CliProcess.Run("sweep", "--defect", "glitch", "--models", models, "--write-config", target);
        Assert.Equal(2, code);
        Assert.Contains(target, stderr);
    }
}
