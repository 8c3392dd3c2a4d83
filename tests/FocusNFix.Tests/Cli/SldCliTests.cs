using Xunit;

namespace FocusNFix.Tests.Cli;

public class SldCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-sld-cli-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    static string[] Sample(params string[] extra) =>
        new[] { "sample", "--model", Golden.Case("pipeline_tiny_sd15"), "--prompt", "a green triangle", "--steps", "2" }.Concat(extra).ToArray();

    [Fact]
    public void SampleWithAPresetAndAnOverrideWritesTheImage()
    {
        var (code, stdout, stderr) = CliProcess.Run(Sample("--guidance", "5", "--sld-concept", "green triangle", "--sld-preset", "strong",
            "--sld-warmup-steps", "0", "--out", _tmp));
        Assert.True(code == 0, stdout + stderr);
        Assert.True(File.Exists(Path.Combine(_tmp, "0_0.png")));
        Assert.DoesNotContain("never applies", stderr); // the flag overrode the preset's 7 warm-up steps
    }

    [Theory]
    [InlineData("--sld-preset given without --sld-concept", "--guidance", "5", "--sld-preset", "max")]
    [InlineData("needs classifier-free guidance", "--guidance", "1", "--sld-concept", "green triangle")]
    [InlineData("--sld-momentum-beta = 1.5: expected a number in [0, 1]", "--guidance", "5", "--sld-concept", "green", "--sld-momentum-beta", "1.5")]
    [InlineData("--sld-preset 'huge'", "--guidance", "5", "--sld-concept", "green", "--sld-preset", "huge")]
    public void BadSldOptionsGiveOneErrorLine(string message, params string[] extra)
    {
        var (code, _, stderr) = CliProcess.Run(Sample(extra.Append("--out").Append(_tmp).ToArray()));
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(message, stderr);
        Assert.Empty(Directory.GetFiles(_tmp));
    }
}
