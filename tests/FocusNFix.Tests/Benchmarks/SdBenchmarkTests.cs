using System.Text.Json.Nodes;
using FocusNFix.Benchmarks;
using FocusNFix;
using FocusNFix.IO;
using FocusNFix.Pipelines;
using FocusNFix.Tests.Cli;
using Xunit;

namespace FocusNFix.Tests.Benchmarks;

public class SdBenchmarkTests
{
    /// <summary>Every figure runs end to end on the tiny SD pipeline: finite positive times, a peak at least the model's RSS.</summary>
    [Fact]
    public void EveryMeasurementRunsOnATinyPipeline()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_sd15"));
        foreach (var name in SdMeasurement.Names)
        {
            var r = SdMeasurement.Run(pipe, name, size: 32, repeats: 2);
            Assert.Equal(name, r.Name);
            Assert.Equal(2, r.Seconds.Count);
            Assert.All(r.Seconds, s => Assert.True(s > 0 && double.IsFinite(s), $"{name}: {s} s"));
            Assert.True(r.PeakRssMiB > 0, name);
            Assert.True(r.PeakWasReset, name);
            Assert.Null(pipe.Lora);
            Assert.False(pipe.ActivationCheckpointing, $"{name} left the pipeline's checkpointing on");
            Assert.All(pipe.Unet.parameters(), p => Assert.False(p.requires_grad));
        }
        Assert.Throws<InvalidInputException>(() => SdMeasurement.Run(pipe, "unet_forward_no_grad", size: 30, repeats: 1));
        Assert.Throws<InvalidInputException>(() => SdMeasurement.Run(pipe, "nope", size: 32, repeats: 1));
    }

    /// <summary>A peak reached before the reset does not count in the next measurement's peak.</summary>
    [Fact]
    public void PeakRssIsResetPerMeasurement()
    {
        // A 200 MiB allocation before the reset must not show in the peak measured after it.
        var big = new byte[200 << 20];
        Array.Fill(big, (byte)1);
        double before = PeakRss.PeakMiB();
        big = null;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.True(PeakRss.Reset());
        Assert.True(PeakRss.PeakMiB() <= before, $"{PeakRss.PeakMiB()} MiB after the reset, {before} MiB before");
        Assert.True(PeakRss.CurrentMiB() <= PeakRss.PeakMiB() + 1);
        GC.KeepAlive(big);
    }

    static ChildCommand Echo(string json, int exit = 0) => new("/bin/sh", new[] { "-c", $"echo 'progress line'; echo '{json}'; exit {exit}" });

    [Fact]
    public void ReportPairsOursWithThePeerAndComputesRatios()
    {
        var calls = new List<string>();
        ChildCommand Ours(string name, int size) { calls.Add($"ours {name} {size}"); return Echo($"{{\"seconds\":[2.0,4.0,3.0],\"peak_rss_mib\":1000,\"model_rss_mib\":900,\"warm_rss_mib\":950}}"); }
        ChildCommand Peer(string name, int size) { calls.Add($"peer {name} {size}"); return Echo($"{{\"seconds\":[4.0],\"peak_rss_mib\":2000,\"versions\":{{\"diffusers\":\"0.27.2\"}}}}"); }
        var o = new SdBenchOptions("sd15", "/m", new[] { 512, 256 }, "float32", 2, 3, new[] { "unet_forward_no_grad", "train_step_k2" });
        var report = SdBenchmark.Run(o, Ours, Peer);

        // Alternating: each figure's peer runs right after ours.
        Assert.Equal(new[] { "ours unet_forward_no_grad 512", "peer unet_forward_no_grad 512", "ours train_step_k2 512", "peer train_step_k2 512",
            "ours unet_forward_no_grad 256", "peer unet_forward_no_grad 256", "ours train_step_k2 256", "peer train_step_k2 256" }, calls);
        var figures = report["figures"]!.AsArray();
        Assert.Equal(4, figures.Count);
        var f = figures[0]!;
        Assert.Equal(3.0, f["ours"]!["median_s"]!.GetValue<double>());
        Assert.Equal(2.0, f["ours"]!["min_s"]!.GetValue<double>());
        Assert.Equal(0.75, f["ours_over_peer"]!["time"]!.GetValue<double>());
        Assert.Equal(0.5, f["ours_over_peer"]!["peak_rss"]!.GetValue<double>());
        Assert.Equal(950, f["ours"]!["warm_rss_mib"]!.GetValue<double>());
        Assert.Null(f["peer"]!["warm_rss_mib"]);
        Assert.Equal("0.27.2", report["peer"]!["versions"]!["diffusers"]!.GetValue<string>());
        Assert.True(report["complete"]!.GetValue<bool>());
        Assert.Equal(SdMeasurement.NoGradStepsBeforeWindow, report["train_step"]!["no_grad_steps_before_window"]!.GetValue<int>());
    }

    [Fact]
    public void RoundsAlternateTheSidesAndPoolEveryTimedCall()
    {
        var calls = new List<string>();
        int ourRound = 0, peerRound = 0;
        // Ours takes 2, 4, 6 s in its three rounds, the peer 4, 4, 4: the machine "slows down" between rounds.
        ChildCommand Ours(string name, int size) { calls.Add("ours"); ourRound++; return Echo($"{{\"seconds\":[{2 * ourRound}.0],\"peak_rss_mib\":{100 + ourRound},\"model_rss_mib\":90}}"); }
        ChildCommand Peer(string name, int size) { calls.Add("peer"); peerRound++; return Echo("{\"seconds\":[4.0],\"peak_rss_mib\":200,\"model_rss_mib\":90}"); }
        var o = new SdBenchOptions("sd15", "/m", new[] { 256 }, "float32", 2, 1, new[] { "unet_forward_no_grad" }, Rounds: 3);
        var report = SdBenchmark.Run(o, Ours, Peer);

        Assert.Equal(new[] { "ours", "peer", "ours", "peer", "ours", "peer" }, calls);
        Assert.Equal(3, report["rounds"]!.GetValue<int>());
        var f = report["figures"]!.AsArray().Single()!;
        Assert.Equal(new[] { 2.0, 4.0, 6.0 }, f["ours"]!["seconds"]!.AsArray().Select(n => n!.GetValue<double>()));
        Assert.Equal(4.0, f["ours"]!["median_s"]!.GetValue<double>());
        Assert.Equal(103, f["ours"]!["peak_rss_mib"]!.GetValue<double>());  // the highest round's peak
        Assert.Equal(1.0, f["ours_over_peer"]!["time"]!.GetValue<double>());
        Assert.Equal(new[] { 0.5, 1.0, 1.5 }, f["ours_over_peer_by_round"]!.AsArray().Select(r => r!["time"]!.GetValue<double>()));

        // A failed round makes the figure failed, not a median of the rest.
        int n = 0;
        ChildCommand Flaky(string name, int size) => ++n == 2 ? Echo("{}", exit: 137) : Echo("{\"seconds\":[1.0],\"peak_rss_mib\":10}");
        var failed = SdBenchmark.Run(o with { }, Flaky, null);
        Assert.False(failed["complete"]!.GetValue<bool>());
        Assert.NotNull(failed["figures"]![0]!["ours"]!["error"]);
    }

    [Fact]
    public void ASkippedPeerIsAskedOnceAndAFailedChildIsReported()
    {
        int peerCalls = 0;
        ChildCommand Ours(string name, int size) => name == "vae_decode_grad" ? Echo("{}", exit: 137) : Echo("{\"seconds\":[1.0],\"peak_rss_mib\":10}");
        ChildCommand Peer(string name, int size) { peerCalls++; return Echo("{\"skipped\":\"no diffusers here\"}"); }
        var o = new SdBenchOptions("sd15", "/m", new[] { 64 }, "float32", 2, 1, new[] { "unet_forward_no_grad", "vae_decode_grad" });
        var report = SdBenchmark.Run(o, Ours, Peer);
        Assert.Equal(1, peerCalls);
        Assert.Equal("no diffusers here", report["peer"]!["skipped"]!.GetValue<string>());
        var figures = report["figures"]!.AsArray();
        Assert.Null(figures[0]!["peer"]);
        Assert.StartsWith("exit code 137", figures[1]!["ours"]!["error"]!.GetValue<string>());
        Assert.False(report["complete"]!.GetValue<bool>());
    }

    [Fact]
    public void AChildThatHangsIsKilledAtTheTimeout()
    {
        var r = SdBenchmark.RunChild(new ChildCommand("/bin/sh", new[] { "-c", "sleep 30" }), TimeSpan.FromSeconds(1));
        Assert.StartsWith("timed out", r["error"]!.GetValue<string>());
    }

    [Fact]
    public void AFailedChildIsReportedByItsMessageNotTheLastFrameOfItsStackTrace()
    {
        // What System.CommandLine prints for an exception the command did not expect (fnf bench one, 2026-12-02).
        var dotnet = "echo 'Unhandled exception: System.Runtime.InteropServices.ExternalException (0x80004005): out of memory' >&2; " +
                     "echo '   at TorchSharp.torch.Tensor.backward()' >&2; echo '   at System.CommandLine.Invocation.InvocationPipeline.Invoke(ParseResult parseResult)' >&2; exit 1";
        var r = SdBenchmark.RunChild(new ChildCommand("/bin/sh", new[] { "-c", dotnet }));
        Assert.Equal("exit code 1: Unhandled exception: System.Runtime.InteropServices.ExternalException (0x80004005): out of memory", r["error"]!.GetValue<string>());

        var python = "echo 'Traceback (most recent call last):' >&2; echo '  File \"sd_peer.py\", line 3' >&2; echo 'RuntimeError: bad shape' >&2; exit 1";
        Assert.Equal("exit code 1: RuntimeError: bad shape", SdBenchmark.RunChild(new ChildCommand("/bin/sh", new[] { "-c", python }))["error"]!.GetValue<string>());
        Assert.Equal("exit code 3: (no stderr)", SdBenchmark.RunChild(new ChildCommand("/bin/sh", new[] { "-c", "exit 3" }))["error"]!.GetValue<string>());
    }

    [Fact]
    public void ThePeerRunsWithoutTheNativeSettingsThisProcessGaveItself()
    {
        // The settings fnf set for itself reach children through the environment unless removed; the peer gets torch's defaults.
        var script = "echo \"{\\\"isa\\\":\\\"${DNNL_MAX_CPU_ISA-unset}\\\",\\\"extra\\\":\\\"${FNF_TEST_EXTRA-unset}\\\"}\"";
        var env = new Dictionary<string, string?> { ["DNNL_MAX_CPU_ISA"] = null, ["FNF_TEST_EXTRA"] = "1" };
        var r = SdBenchmark.RunChild(new ChildCommand("/bin/sh", new[] { "-c", script }, env));
        Assert.Equal("unset", r["isa"]!.GetValue<string>());
        Assert.Equal("1", r["extra"]!.GetValue<string>());
        // Without changes the child sees this process's settings.
        r = SdBenchmark.RunChild(new ChildCommand("/bin/sh", new[] { "-c", script }));
        Assert.Equal(Environment.GetEnvironmentVariable("DNNL_MAX_CPU_ISA") ?? "unset", r["isa"]!.GetValue<string>());
        if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is null && Environment.GetEnvironmentVariable("MALLOC_TRIM_THRESHOLD_") is null)
            Assert.Equal(NativeSettings.MallocSetting, NativeSettings.Effective()["malloc_mmap_threshold"]);
    }

    [Fact]
    public void TheHiddenSubcommandPrintsOneMeasurementAsJson()
    {
        var (code, stdout, stderr) = CliProcess.Run("bench", "one", "--model", Golden.Case("pipeline_tiny_sd15"), "--measure", "train_step_k2",
            "--size", "32", "--threads", "1");
        Assert.True(code == 0, stderr);
        var r = JsonNode.Parse(stdout.Trim().Split('\n')[^1])!;
        Assert.Equal("train_step_k2", r["name"]!.GetValue<string>());
        Assert.Single(r["seconds"]!.AsArray());
        Assert.True(r["peak_rss_mib"]!.GetValue<double>() > 0);
        Assert.Equal(1, r["threads"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("--preset sd99", "--preset sd99: expected one of sd15, sd21")]
    [InlineData("--preset sd15 --sizes 512,300", "--sizes 512,300: expected comma-separated positive multiples of 8")]
    [InlineData("--preset sd15 --sizes big", "--sizes big: expected")]
    [InlineData("--preset sd15 --measure unet,vae", "--measure unet: expected one of")]
    [InlineData("--preset sd15 --batch 2", "--preset sd15: --batch apply to --model benchmarks only")]
    [InlineData("--preset sd15 --dtype int8", "--dtype")]
    [InlineData("--sizes 256", "--sizes: apply to --preset benchmarks only")]
    [InlineData("--preset sd15 --out /nonexistent-dir/report.json", "/nonexistent-dir")]
    [InlineData("--preset sd15 --peer --peer-script /nonexistent/sd_peer.py", "/nonexistent/sd_peer.py")]
    public void BadPresetArgumentsAreRefusedBeforeAnyModelIsBuilt(string args, string expected)
    {
        var cache = Path.Combine(Path.GetTempPath(), "fnf-bench-bad-" + Guid.NewGuid().ToString("N"));
        var extra = args.Contains("--preset") ? new[] { "--cache-dir", cache } : Array.Empty<string>();
        var (code, stdout, stderr) = CliProcess.Run(new[] { "bench" }.Concat(extra).Concat(args.Split(' ')).ToArray());
        Assert.Equal(2, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains(expected, line);
        Assert.Equal("", stdout);
        Assert.False(Directory.Exists(cache));
    }
}
