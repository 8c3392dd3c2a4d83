using FocusNFix.Pipelines;
using FocusNFix.Training;
using Xunit;

namespace FocusNFix.Tests.Training;

public class BenchmarkTests
{
    [Fact]
    public void BenchmarkReportsEveryFigureWithRepeatedTrainingSteps()
    {
        using var pipe = TextToImagePipeline.Load(Golden.Case("pipeline_tiny_pixel"));
        var figures = Benchmark.Run(pipe, batch: 1, repeats: 2, steps: 2, ks: new[] { 1, 2 });
        Assert.Equal(new[] { "unet_forward_no_grad_batch1", "unet_forward_backward_lora_batch1", "train_step_k1_batch1_steps2", "train_step_k2_batch1_steps2", "sample_batch1_steps2" },
            figures.Select(f => f.Name));
        Assert.All(figures, f => Assert.True(f.MedianSeconds > 0 && f.PeakRssMiB > 0, f.Name));
        Assert.Null(pipe.Lora);
    }

    [Fact]
    public void ContentionRunsTheFiguresAgainWithBusyProcessesAndStopsThem()
    {
        int runs = 0;
        var competing = new List<int>();
        List<BenchFigure> Run()
        {
            runs++;
            if (runs == 2) competing.AddRange(BusyProcesses.Current!.ProcessIds);
            else Assert.Null(BusyProcesses.Current);
            Assert.All(competing, id => Assert.False(System.Diagnostics.Process.GetProcessById(id).HasExited));
            return new List<BenchFigure> { new("f", runs, runs, 1, 1) };
        }
        var report = Benchmark.RunWithContention(Run, competitors: 2);
        Assert.Equal(2, runs);
        Assert.Equal(2, competing.Count);
        Assert.Null(BusyProcesses.Current);
        foreach (var id in competing)
            Assert.Throws<ArgumentException>(() => System.Diagnostics.Process.GetProcessById(id)); // killed and reaped
        var r = Assert.Single(report.Slowdowns);
        Assert.Equal(2.0, r.Slowdown);
    }
}
