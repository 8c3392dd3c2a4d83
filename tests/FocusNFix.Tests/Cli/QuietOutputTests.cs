using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Cli;

/// <summary>libtorch's NNPACK warnings ("Could not initialize NNPACK! Reason: Unsupported hardware.", hundreds per run) are gone.</summary>
public sealed class QuietOutputTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-quiet-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void NnpackIsSwitchedOffOnceTorchRuns()
    {
        using var x = ones(1, 3, 8, 8);
        using var w = ones(4, 3, 3, 3);
        using var y = nn.functional.conv2d(x, w);
        Assert.True(NativeSettings.NnpackDisabled);
    }

    [Fact]
    public void SampleWritesNothingToStderr()
    {
        var (code, stdout, stderr) = CliProcess.Run("sample", "--model", Golden.Case("pipeline_tiny_sd15"), "--prompt", "a red circle",
            "--steps", "2", "--out", _dir);
        Assert.True(code == 0, stdout + stderr);
        Assert.Equal("", stderr);
        Assert.True(File.Exists(Path.Combine(_dir, "0_0.png")));
    }
}
