using System.Text.RegularExpressions;
using FocusNFix.Evaluation;
using FocusNFix.IO;
using FocusNFix.Masks;
using SixLabors.ImageSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Evaluation;

public sealed class ReportWriterTests : IDisposable
{
    static readonly string[] Methods = { "base", "draft", "global", "focus-n-fix" };
    static readonly double[] RewardOffset = { 0.2, 0.6, 0.4, 0.55 };
    readonly string _dir = Path.Combine(Path.GetTempPath(), "fnf-report-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    /// <summary>
    /// 4 methods x 2 prompts x 2 seeds with hand-set metrics (target reward offset + 0.1·k for image k = 2p+s; for the
    /// fine-tuned methods psnr_outside 20, 30, +Inf, 40, psnr_inside NaN for k = 1, changed share 0.9 - 0.1·k), real
    /// 32x32 pictures on disk, and training curves for two methods.
    /// </summary>
    static EvaluationResult Synthetic(string dir, bool pictures = true)
    {
        var r = new EvaluationResult
        {
            Title = "ShapesWorld hazard fix",
            BaseModel = "models/shapes-base",
            TargetMetric = "reward/hazard",
            Methods = Methods.ToList(),
            Prompts = { "a red circle on the left | a blue square", "a green triangle in the centre" },
            Seeds = { 7, 8 },
            Notes = { ["command"] = "fnf eval --config eval.json", ["wall_time_s"] = "12.5", ["config"] = "{\n  \"steps\": 20\n}" },
        };
        double[] psnrOut = { 20, 30, double.PositiveInfinity, 40 };
        for (int m = 0; m < Methods.Length; m++)
            for (int p = 0; p < 2; p++)
                for (int s = 0; s < 2; s++)
                {
                    int k = 2 * p + s;
                    var metrics = new Dictionary<string, double>
                    {
                        ["reward/hazard"] = RewardOffset[m] + 0.1 * k,
                        ["reward/alignment"] = 0.5 - 0.01 * m,
                    };
                    if (m > 0)
                    {
                        metrics[MetricNames.PsnrOutside] = psnrOut[k];
                        metrics[MetricNames.PsnrInside] = k == 1 ? double.NaN : 10 + k;
                        metrics[MetricNames.ChangedShareInside] = 0.9 - 0.1 * k;
                    }
                    r.Images.Add(new ImageRecord
                    {
                        PromptIndex = p, Seed = r.Seeds[s], Prompt = r.Prompts[p], Method = Methods[m],
                        ImagePath = $"images/{Methods[m]}/p{p}_s{r.Seeds[s]}.png", Metrics = metrics,
                    });
                }
        r.Curves.Add(new TrainingCurve { Method = "draft" }
            .Add(0, new() { ["reward"] = 0.2, ["constraint"] = 0, ["loss"] = -0.2 })
            .Add(10, new() { ["reward"] = 0.5, ["constraint"] = 0, ["loss"] = -0.5 })
            .Add(20, new() { ["reward"] = 0.7, ["constraint"] = 0, ["loss"] = -0.7 }));
        r.Curves.Add(new TrainingCurve { Method = "focus-n-fix" }
            .Add(0, new() { ["reward"] = 0.2, ["constraint"] = 0.0, ["loss"] = -0.2 })
            .Add(10, new() { ["reward"] = 0.4, ["constraint"] = 0.3, ["loss"] = -0.1 })
            .Add(20, new() { ["reward"] = 0.6, ["constraint"] = 0.1, ["loss"] = -0.5 }));

        for (int p = 0; p < 2; p++)
            foreach (var seed in r.Seeds)
            {
                var row = new PictureRow { PromptIndex = p, Seed = seed, Prompt = r.Prompts[p] };
                string Pic(string name) => $"images/{name}/p{p}_s{seed}.png";
                row.BaseImage = Pic("base");
                row.HeatmapOverlay = Pic("heatmap");
                row.Mask = Pic("mask");
                foreach (var m in Methods.Skip(1)) { row.MethodImages[m] = Pic(m); row.DiffMaps[m] = Pic("diff-" + m); }
                r.Rows.Add(row);
                if (pictures) WritePictures(dir, row, p, seed);
            }
        return r;
    }

    // A background gradient with a red square (the "problem"); each method repaints it differently.
    static void WritePictures(string dir, PictureRow row, int p, long seed)
    {
        using var scope = NewDisposeScope();
        var yy = linspace(0, 1, 32).reshape(1, 32, 1).expand(1, 32, 32);
        var xx = linspace(0, 1, 32).reshape(1, 1, 32).expand(1, 32, 32);
        var baseImg = cat(new[] { 0.3f + 0.2f * xx, 0.5f + 0.3f * yy, full(1, 32, 32, 0.7f + 0.05f * p) }, 0).contiguous();
        int y0 = 6 + (int)(seed % 2) * 10, x0 = 8 + p * 8;
        baseImg[.., y0..(y0 + 8), x0..(x0 + 8)] = tensor(new[] { 0.95f, 0.1f, 0.1f }).reshape(3, 1, 1);
        var heat = zeros(32, 32);
        heat[y0..(y0 + 8), x0..(x0 + 8)] = tensor(1f);
        heat = nn.functional.avg_pool2d(heat.reshape(1, 1, 32, 32), 5, stride: 1, padding: 2).reshape(32, 32);
        var mask = HeatmapMask.FromHeatmap(heat.reshape(1, 1, 32, 32), new MaskOptions { DilatePixels = 2 });
        Images.SavePng(baseImg, Path.Combine(dir, row.BaseImage!));
        Images.SavePng(ReportWriter.HeatmapOverlay(baseImg, heat), Path.Combine(dir, row.HeatmapOverlay!));
        HeatmapMask.SavePng(mask, Path.Combine(dir, row.Mask!));
        foreach (var (m, i) in Methods.Skip(1).Select((m, i) => (m, i)))
        {
            var img = baseImg.clone();
            if (m == "draft") img = (img * 0.8f + 0.1f).contiguous();  // changes everything
            img[.., y0..(y0 + 8), x0..(x0 + 8)] = tensor(new[] { 0.3f, 0.6f + 0.1f * i, 0.3f }).reshape(3, 1, 1);
            Images.SavePng(img, Path.Combine(dir, row.MethodImages[m]));
            Images.SavePng(ReportWriter.DifferenceMap(img, baseImg), Path.Combine(dir, row.DiffMaps[m]));
        }
    }

    static Dictionary<string, Dictionary<string, string>> ParseTable(string table)
    {
        var lines = table.Trim().Split('\n');
        string[] Cells(string line) => line.Trim().Trim('|').Split(" | ").Select(c => c.Trim().Trim('|').Trim()).ToArray();
        var header = Cells(lines[0]);
        Assert.Matches(@"^\|( -+:? \|)+$", lines[1]);
        return lines.Skip(2).Select(Cells).ToDictionary(c => c[0], c => header.Zip(c).ToDictionary(x => x.First, x => x.Second));
    }

    [Fact]
    public void HeadlineFiguresOpenTheReportAsANarrowTableAfterTheVerdictAndTheFullTableStaysOnDemand()
    {
        var r = Synthetic(_dir, pictures: false);
        r.HeadlineMetrics = new() { MetricNames.PsnrOutside, "reward/hazard", "not_measured" };
        r.Verdict = "**Focus-N-Fix** won.\n\nOne seed: `noise`.";
        ReportWriter.Write(r, _dir);
        var md = File.ReadAllText(Path.Combine(_dir, ReportWriter.MarkdownFile));
        Assert.Contains("> **Focus-N-Fix** won.\n>\n> One seed: `noise`.", md);
        int summary = md.IndexOf("## Summary", StringComparison.Ordinal), metrics = md.IndexOf("## Metrics", StringComparison.Ordinal);
        Assert.True(summary > 0 && summary < metrics, "the summary table comes before the full table");
        var table = md[summary..metrics];
        // Only the headline figures that were measured, each with its direction; PSNR in dB (median 30 of 20, 30, +Inf, 40 -> 35).
        Assert.Contains("| method | psnr_outside ↑ | reward/hazard – |", table);
        Assert.DoesNotContain("not_measured", table);
        Assert.Contains("| focus-n-fix | 35.0 dB |", table);
        Assert.Contains("| base | — |", table);

        var html = File.ReadAllText(Path.Combine(_dir, ReportWriter.HtmlFile));
        Assert.Contains("<blockquote class=\"verdict\">\n<p><b>Focus-N-Fix</b> won.</p>\n<p>One seed: <code>noise</code>.</p>", html);
        Assert.True(html.IndexOf("<h2>Summary</h2>", StringComparison.Ordinal) < html.IndexOf("<details>\n<summary>Every figure of every method</summary>\n<h2>Metrics</h2>", StringComparison.Ordinal));
    }

    [Fact]
    public void WithoutHeadlineFiguresTheReportKeepsItsSingleTable()
    {
        var r = Synthetic(_dir, pictures: false);
        ReportWriter.Write(r, _dir);
        Assert.DoesNotContain("## Summary", File.ReadAllText(Path.Combine(_dir, ReportWriter.MarkdownFile)));
        var html = File.ReadAllText(Path.Combine(_dir, ReportWriter.HtmlFile));
        Assert.DoesNotContain("<details>\n<summary>Every figure", html);
        Assert.DoesNotContain("class=\"verdict\"", html);
    }

    [Theory]
    [InlineData("oracle_rot", 0.03125, "3.1%")]
    [InlineData("psnr_outside", 33.3776, "33.4 dB")]
    [InlineData("judge_alignment", 1.0, "1.000")]
    [InlineData("reward_rot", -0.0175, "-0.0175")]
    public void HeadlineValuesShowRatesInPercentAndPsnrInDecibels(string figure, double value, string shown) =>
        Assert.Equal(shown, ReportWriter.FormatHeadline(figure, value));

    [Fact]
    public void WritesTheThreeFilesAndPlotsWithNothingTemporaryLeft()
    {
        var r = Synthetic(_dir);
        ReportWriter.Write(r, _dir);
        foreach (var f in new[] { "report.json", "report.md", "report.html" })
            Assert.True(new FileInfo(Path.Combine(_dir, f)).Length > 100, f);

        var plots = Directory.GetFiles(Path.Combine(_dir, "plots")).Select(Path.GetFileName).OrderBy(n => n).ToList();
        var expected = new[] { "curve_reward.png", "curve_constraint.png", "curve_loss.png", "bar_reward_hazard.png",
            "bar_reward_alignment.png", "bar_psnr_inside.png", "bar_psnr_outside.png", "bar_changed_share_inside.png" };
        Assert.Equal(expected.OrderBy(n => n), plots);
        foreach (var name in plots)
        {
            var info = Image.Identify(Path.Combine(_dir, "plots", name!));
            Assert.True(info.Width >= 400 && info.Height >= 300, $"{name}: {info.Width}x{info.Height}");
        }
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp", SearchOption.AllDirectories));

        // Writing again over an existing report replaces it in place, still atomically.
        ReportWriter.Write(r, _dir);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp", SearchOption.AllDirectories));
        Assert.Equal(plots.Count, Directory.GetFiles(Path.Combine(_dir, "plots")).Length);
    }

    [Fact]
    public void JsonRoundTripsIncludingNonFiniteNumbers()
    {
        var r = Synthetic(_dir, pictures: false);
        var written = ReportWriter.Write(r, _dir);
        var text = File.ReadAllText(Path.Combine(_dir, "report.json"));
        Assert.Contains("\"target_metric\": \"reward/hazard\"", text);
        Assert.Contains("\"psnr_outside\": \"Infinity\"", text);
        Assert.Contains("\"psnr_inside\": \"NaN\"", text);
        Assert.Contains("\"image_path\": \"images/base/p0_s7.png\"", text);

        var back = EvaluationResult.Load(Path.Combine(_dir, "report.json"));
        Assert.Equal(written.ToJson(), back.ToJson());
        Assert.Equal(16, back.Images.Count);
        Assert.Equal(4, back.Summaries.Count);
        Assert.Equal(new long[] { 7, 8 }, back.Seeds);
        Assert.True(double.IsPositiveInfinity(back.Images.Single(i => i.Method == "draft" && i.PromptIndex == 1 && i.Seed == 7).Metrics["psnr_outside"]));
        Assert.True(double.IsNaN(back.Images.Single(i => i.Method == "draft" && i.PromptIndex == 0 && i.Seed == 8).Metrics["psnr_inside"]));
        Assert.Equal(new[] { 0, 10, 20 }, back.Curves[1].Points.Select(p => p.Step));
        Assert.Equal(0.3, back.Curves[1].Points[1].Values["constraint"]);
        Assert.Equal("images/diff-global/p1_s8.png", back.Rows[3].DiffMaps["global"]);
        Assert.Contains("\"steps\": 20", back.Notes["config"]);
    }

    [Fact]
    public void SummariesUseMediansForPsnrMeansElseAndSkipNaN()
    {
        var r = Synthetic(_dir, pictures: false);
        var s = EvaluationResult.Summarise("global", r.Images);
        Assert.Equal(4, s.Images);
        Assert.Equal(0.4 + 0.15, s.Aggregates["reward/hazard"], 12);
        Assert.Equal(35, s.Aggregates["psnr_outside"]);                 // median of 20, 30, 40, +Inf
        Assert.Equal(12, s.Aggregates["psnr_inside"]);                  // median of 10, 12, 13 (NaN skipped)
        Assert.Equal(3, s.Counts["psnr_inside"]);
        Assert.Equal(0.75, s.Aggregates["changed_share_inside"], 12);
        Assert.Equal(Aggregation.Median, MethodSummary.AggregationFor("psnr"));
        Assert.Equal(Aggregation.Mean, MethodSummary.AggregationFor("ssim_outside"));
        Assert.Equal(Aggregation.Mean, MethodSummary.AggregationFor("psnrish"));

        var allNaN = EvaluationResult.Summarise("x", new[] { new ImageRecord { Method = "x", Metrics = { ["m"] = double.NaN } } });
        Assert.False(allNaN.Aggregates.ContainsKey("m"));
        Assert.Equal(0, allNaN.Counts["m"]);
        var infinite = EvaluationResult.Summarise("x", new[] { 1.0, double.PositiveInfinity, double.PositiveInfinity, 2.0 }
            .Select(v => new ImageRecord { Method = "x", Metrics = { ["psnr"] = v } }));
        Assert.True(double.IsPositiveInfinity(infinite.Aggregates["psnr"]));
    }

    [Fact]
    public void MarkdownTableHasOneRowPerMethodWithTheExpectedNumbers()
    {
        var r = Synthetic(_dir, pictures: false);
        r.ComputeSummaries();
        var table = ReportWriter.MarkdownTable(r);
        var rows = ParseTable(table);
        Assert.Equal(Methods, rows.Keys);
        Assert.Equal(new[] { "method", "images", "reward/hazard (target)", "reward/alignment", "psnr_inside", "psnr_outside", "changed_share_inside" },
                     rows["base"].Keys);
        Assert.Equal("0.35", rows["base"]["reward/hazard (target)"]);
        Assert.Equal("0.75", rows["draft"]["reward/hazard (target)"]);
        Assert.Equal("0.55", rows["global"]["reward/hazard (target)"]);
        Assert.Equal("0.7", rows["focus-n-fix"]["reward/hazard (target)"]);
        Assert.Equal("0.47", rows["focus-n-fix"]["reward/alignment"]);
        Assert.Equal("4", rows["draft"]["images"]);
        Assert.Equal("35", rows["draft"]["psnr_outside"]);
        Assert.Equal("12", rows["draft"]["psnr_inside"]);
        Assert.Equal("0.75", rows["focus-n-fix"]["changed_share_inside"]);
        Assert.Equal("—", rows["base"]["psnr_outside"]);

        ReportWriter.Write(r, _dir);
        var md = File.ReadAllText(Path.Combine(_dir, "report.md"));
        Assert.Contains(table, md);
        Assert.Contains("| draft | +0.4 | -0.01 |", md);               // change vs base
        Assert.Matches(@"!\[reward ↑ against training step; [^\]]+\]\(plots/curve_reward\.png\)", md);  // the caption says how it is smoothed
        Assert.Contains("## Glossary", md);
        Assert.Contains("<img src=\"images/mask/p1_s8.png\"", md);
    }

    [Fact]
    public void HtmlReferencesEveryPictureRelativelyAndNothingOutside()
    {
        var r = Synthetic(_dir);
        // An absolute path is rewritten relative to the report folder.
        r.Rows[0].Mask = Path.Combine(_dir, "images", "mask", "p0_s7.png");
        ReportWriter.Write(r, _dir);
        var html = File.ReadAllText(Path.Combine(_dir, "report.html"));

        var paths = r.Rows.SelectMany(row => new[] { row.BaseImage, row.HeatmapOverlay, row.Mask }
                                 .Concat(row.MethodImages.Values).Concat(row.DiffMaps.Values))
                          .Select(p => Path.IsPathRooted(p) ? Path.GetRelativePath(_dir, p!) : p).ToList();
        Assert.Equal(4 * 9, paths.Count);
        foreach (var p in paths)
        {
            Assert.Contains($"src=\"{p}\"", html);
            Assert.True(File.Exists(Path.Combine(_dir, p!)), p);
        }
        foreach (var plot in Directory.GetFiles(Path.Combine(_dir, "plots")))
            Assert.Contains($"src=\"plots/{Path.GetFileName(plot)}\"", html);

        // Every src/href is relative and resolves inside the folder; nothing from a network or absolute location.
        var refs = Regex.Matches(html, "(?:src|href)=\"([^\"]*)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(refs);
        foreach (var target in refs)
        {
            Assert.DoesNotMatch("^[a-zA-Z][a-zA-Z0-9+.-]*:", target);
            Assert.False(target.StartsWith('/'), target);
            Assert.True(File.Exists(Path.Combine(_dir, Uri.UnescapeDataString(target))), target);
        }
        Assert.DoesNotContain("http", html);
        Assert.DoesNotContain(_dir, html);
        Assert.DoesNotContain("<script", html);
        Assert.Contains("image-rendering: pixelated", html);
        Assert.Contains("a red circle on the left | a blue square", html);
        Assert.Contains("<td class=\"num target\">0.75</td>", html);

        var json = File.ReadAllText(Path.Combine(_dir, "report.json"));
        Assert.DoesNotContain(_dir, json);
    }

    [Fact]
    public void HtmlAndMarkdownEscapeUserText()
    {
        var r = Synthetic(_dir, pictures: false);
        r.Title = "<b>bold</b> & co";
        r.Prompts[0] = "a <script>x</script> prompt";
        r.Rows[0].Prompt = r.Prompts[0];
        r.Rows[0].BaseImage = "images/with space/p 0.png";
        ReportWriter.Write(r, _dir);
        var html = File.ReadAllText(Path.Combine(_dir, "report.html"));
        Assert.Contains("&lt;b&gt;bold&lt;/b&gt; &amp; co", html);
        Assert.DoesNotContain("<script", html);
        Assert.Contains("src=\"images/with%20space/p%200.png\"", html);
    }

    [Fact]
    public void HeatmapOverlayTintsHotPixelsAndLeavesColdOnesDesaturated()
    {
        using var scope = NewDisposeScope();
        var image = zeros(3, 4, 4);
        image[0] = tensor(0.2f); image[1] = tensor(0.4f); image[2] = tensor(0.6f);
        var heat = zeros(2, 2);
        heat[0, 0] = tensor(5f);                                         // normalised: 1 at the top-left quarter
        var overlay = ReportWriter.HeatmapOverlay(image, heat.repeat_interleave(2, 0).repeat_interleave(2, 1));
        Assert.Equal(new long[] { 3, 4, 4 }, overlay.shape);
        float grey = 0.299f * 0.2f + 0.587f * 0.4f + 0.114f * 0.6f;
        var cold = overlay[.., 3, 3];
        Assert.Equal(0.5f * 0.2f + 0.5f * grey, cold[0].item<float>(), 5);
        Assert.Equal(0.5f * 0.6f + 0.5f * grey, cold[2].item<float>(), 5);
        var hot = overlay[.., 0, 0];                                      // 0.3·dimmed + 0.7·yellow (1, 1, 0)
        Assert.Equal(0.3f * (0.5f * 0.2f + 0.5f * grey) + 0.7f, hot[0].item<float>(), 5);
        Assert.Equal(0.3f * (0.5f * 0.6f + 0.5f * grey), hot[2].item<float>(), 5);

        // A low-resolution heatmap is resized; batches work; a constant heatmap shows nothing.
        var batch = ReportWriter.HeatmapOverlay(image.unsqueeze(0).repeat(2, 1, 1, 1), heat.reshape(1, 1, 2, 2));
        Assert.Equal(new long[] { 2, 3, 4, 4 }, batch.shape);
        Assert.Equal(hot[0].item<float>(), batch[1, 0, 0, 0].item<float>(), 5);  // the corner keeps full heat
        var flat = ReportWriter.HeatmapOverlay(image, full(4, 4, 3f));
        Assert.Equal(cold[0].item<float>(), flat[0, 0, 0].item<float>(), 5);
        Assert.Throws<ArgumentException>(() => ReportWriter.HeatmapOverlay(zeros(1, 4, 4), heat));
        Assert.Throws<ArgumentException>(() => ReportWriter.HeatmapOverlay(image.unsqueeze(0).repeat(2, 1, 1, 1), zeros(3, 1, 4, 4)));
    }

    [Fact]
    public void DifferenceMapIsTheLargestChannelDifferenceTimesFour()
    {
        using var scope = NewDisposeScope();
        var a = zeros(3, 2, 2);
        var b = a.clone();
        b[1, 0, 0] = tensor(0.1f);                                        // 0.4 grey
        b[0, 0, 1] = tensor(-0.5f);                                       // clamps to white
        b[2, 1, 0] = tensor(0.05f); b[0, 1, 0] = tensor(0.02f);          // largest channel: 0.2
        var d = ReportWriter.DifferenceMap(a, b);
        Assert.Equal(new long[] { 3, 2, 2 }, d.shape);
        var expected = new[] { 0.4f, 1f, 0.2f, 0f };
        for (int c = 0; c < 3; c++)
            Assert.Equal(expected, d[c].flatten().data<float>().ToArray().Select(v => (float)Math.Round(v, 5)));
        Assert.Throws<ArgumentException>(() => ReportWriter.DifferenceMap(a, zeros(3, 2, 3)));
    }

    [Fact]
    public void LoadRejectsMalformedReports()
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "report.json");
        File.WriteAllText(path, "{ \"images\": 5 }");
        var e = Assert.Throws<InvalidInputException>(() => EvaluationResult.Load(path));
        Assert.Contains(path, e.Message);
        File.WriteAllText(path, "{ \"format_version\": 99 }");
        Assert.Contains("format_version 99", Assert.Throws<InvalidInputException>(() => EvaluationResult.Load(path)).Message);
        Assert.Contains("not found", Assert.Throws<InvalidInputException>(() => EvaluationResult.Load(path + ".x")).Message);
        File.WriteAllText(path, "{ \"title\": \"t\", \"methods\": null }");
        Assert.Empty(EvaluationResult.Load(path).Methods);
    }
}
