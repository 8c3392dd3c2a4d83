using System.Diagnostics;
using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Pipelines;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>One timed figure: median seconds over the repeats and the peak RSS reached while measuring it.</summary>
public sealed record BenchFigure(string Name, double MedianSeconds, double MinSeconds, int Repeats, double PeakRssMiB, string? Note = null);

/// <summary>One figure's median time alone and under contention, and their ratio.</summary>
public sealed record ContentionRatio(string Name, double AloneSeconds, double LoadedSeconds, double Slowdown);

/// <summary>What <see cref="Benchmark.RunWithContention"/> measured.</summary>
public sealed record ContentionReport(int Competitors, List<BenchFigure> Alone, List<BenchFigure> WithCompetitors, List<ContentionRatio> Slowdowns);

/// <summary>Busy processes that compete for the CPU while a benchmark runs; killed on dispose.</summary>
public sealed class BusyProcesses : IDisposable
{
    readonly List<Process> _processes = new();

    /// <summary>The competing processes' ids (for tests and reports).</summary>
    public IReadOnlyList<int> ProcessIds => _processes.Select(p => p.Id).ToList();

    /// <summary>The processes of the run in progress, if any (for tests).</summary>
    public static BusyProcesses? Current { get; private set; }

    public static BusyProcesses Start(int count)
    {
        var b = new BusyProcesses();
        try
        {
            for (int i = 0; i < count; i++)
            {
                var p = Process.Start(new ProcessStartInfo("/bin/sh", new[] { "-c", "exec yes > /dev/null" }) { UseShellExecute = false })
                    ?? throw new InvalidOperationException("could not start a competing process (/bin/sh -c 'yes > /dev/null')");
                b._processes.Add(p);
            }
            Current = b;
            return b;
        }
        catch
        {
            b.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (Current == this) Current = null;
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(); p.WaitForExit(5000); }
            catch (InvalidOperationException) { } // already gone
            p.Dispose();
        }
        _processes.Clear();
    }
}

/// <summary>
/// Speed and memory figures of a pipeline's UNet and of Focus-N-Fix training steps (<c>fnf bench</c>). Training steps
/// use a stand-in reward (mean brightness) so the figures measure the model side: sampling, backprop through the
/// last K steps with checkpointing, the LoRA update.
/// </summary>
public static class Benchmark
{
    public static List<BenchFigure> Run(TextToImagePipeline pipe, int batch, int repeats, int steps, IReadOnlyList<int> ks, Action<string>? progress = null, double guidanceScale = 1.0)
    {
        if (batch < 1) throw new InvalidInputException($"batch = {batch}: expected an integer >= 1");
        if (repeats < 1) throw new InvalidInputException($"repeats = {repeats}: expected an integer >= 1");
        new SampleOptions { Steps = steps, GuidanceScale = guidanceScale }.Validate();
        var figures = new List<BenchFigure>();
        int size = pipe.DefaultSize / pipe.VaeScaleFactor;
        var prompts = Enumerable.Repeat("a red circle in the top left on a white background", batch).ToList();
        Tensor ehs;
        using (no_grad()) ehs = pipe.EncodePrompts(prompts).DetachFromDisposeScope();
        var x = randn(batch, pipe.LatentChannels, size, size).to(pipe.DType, pipe.Device);
        var t = tensor(500L).to(pipe.Device);

        progress?.Invoke("unet forward (no grad)");
        figures.Add(Time($"unet_forward_no_grad_batch{batch}", repeats, () =>
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            pipe.Unet.forward(x, t, ehs);
        }));

        progress?.Invoke("unet forward+backward");
        var lora = LoraNetwork.Attach(pipe.Unet, new LoraConfig { Rank = 8, Alpha = 8 }, new Generator(0));
        foreach (var p in pipe.Unet.parameters()) p.requires_grad = false;
        foreach (var p in lora.TrainableParameters()) p.requires_grad = true;
        try
        {
            figures.Add(Time($"unet_forward_backward_lora_batch{batch}", repeats, () =>
            {
                using var scope = NewDisposeScope();
                pipe.Unet.forward(x, t, ehs).square().mean().backward();
            }));
            using var opt = new AdamW(lora.TrainableParameters(), 1e-4);
            // Kept for every K below, then disposed with this scope's end; the uncond encoding dies with the inner scope.
            Tensor textStates;
            using (var encodeScope = NewDisposeScope())
            using (no_grad())
                textStates = (guidanceScale > 1.0 ? cat(new[] { pipe.EncodePrompts(Enumerable.Repeat("", batch).ToList()), ehs }, 0) : ehs.alias()).DetachFromDisposeScope();
            using var ownedTextStates = textStates;
            foreach (int k in ks)
            {
                progress?.Invoke($"training step K={k}");
                var loop = new DenoisingLoop { Steps = steps, GuidanceScale = guidanceScale, Window = new GradientWindow(BackpropMode.DraftK, k, Checkpointing: true), WithGrad = true };
                figures.Add(Time($"train_step_k{k}_batch{batch}_steps{steps}", repeats, () =>
                {
                    using var scope = NewDisposeScope();
                    opt.ZeroGrad();
                    var noise = randn(batch, pipe.LatentChannels, size, size).to(pipe.Device);
                    var z = loop.Run(pipe, noise, textStates, generators: null);
                    var images = (pipe.DecodeRaw(z) / 2 + 0.5).clamp(0, 1);
                    GradientCheckpoint.Backward(-images.mean());
                    opt.Step();
                }, "stand-in reward: mean brightness"));
            }
        }
        finally { lora.Detach(); }

        progress?.Invoke("sampling throughput");
        var sample = Time($"sample_batch{batch}_steps{steps}", Math.Max(1, repeats / 2), () =>
        {
            using var r = pipe.Sample(prompts, new SampleOptions { Steps = steps, GuidanceScale = guidanceScale, Seeds = Enumerable.Range(0, batch).Select(i => (long)i).ToList() });
        });
        figures.Add(sample with { Note = $"{batch / sample.MedianSeconds:F2} images/s" });
        return figures;
    }

    /// <summary>
    /// The figures alone, then again while <paramref name="competitors"/> busy processes (each <c>yes &gt; /dev/null</c>,
    /// the load issue 10 measured with) share the machine, and each figure's slowdown (with / alone, by median).
    /// </summary>
    public static ContentionReport RunWithContention(Func<List<BenchFigure>> run, int competitors, Action<string>? progress = null)
    {
        progress?.Invoke("alone");
        var alone = run();
        List<BenchFigure> loaded;
        progress?.Invoke($"with {competitors} busy competing process(es)");
        using (BusyProcesses.Start(competitors)) loaded = run();
        var ratios = alone.Zip(loaded, (a, b) => new ContentionRatio(a.Name, a.MedianSeconds, b.MedianSeconds, b.MedianSeconds / a.MedianSeconds)).ToList();
        return new ContentionReport(competitors, alone, loaded, ratios);
    }

    static BenchFigure Time(string name, int repeats, Action body, string? note = null)
    {
        body(); // warm-up: first calls allocate and pick kernels
        PeakRss.Reset();  // each figure gets its own peak
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            body();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        times.Sort();
        return new BenchFigure(name, times[times.Count / 2], times[0], repeats, PeakRss.PeakMiB(), note);
    }

}
