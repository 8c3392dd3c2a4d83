using FocusNFix.Cli;
using Xunit;

namespace FocusNFix.Tests.Cli;

/// <summary>The demo's parent reads its child trainers' plain progress lines (Progress.PlainLines' format) into its own bars.</summary>
public class ChildTrainingTests
{
    [Fact]
    public void ProgressLinesAreReadAndOtherLinesAreNot()
    {
        var p = ChildTraining.ParseProgress("training focus-n-fix: 6/60 (10%, 32.2s, 5.37 s/it), loss 2.6872 reward -2.6872 constraint 0.1238 out 0.0010");
        Assert.Equal(("training focus-n-fix", 6, 60, "loss 2.6872 reward -2.6872 constraint 0.1238 out 0.0010"), p);
        p = ChildTraining.ParseProgress("preparing (originals, heatmaps, masks): 128/128 (100%, 0.9s, 146.77 it/s), caching originals");
        Assert.Equal(("preparing (originals, heatmaps, masks)", 128, 128, "caching originals"), p);
        Assert.Equal(("sampling", 3, 4, (string?)null), ChildTraining.ParseProgress("sampling: 3/4 (75%, 1.0s, 3.00 it/s)"));
        Assert.Null(ChildTraining.ParseProgress("focus-n-fix: wrote the LoRA to /x: pytorch_lora_weights.safetensors (diffusers)"));
        Assert.Null(ChildTraining.ParseProgress("warning: /x/.lock: took over a stale lock (process 12 is gone)"));
    }
}
