using Xunit;

namespace FocusNFix.Tests.Cli;

public class CliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-cli-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    [Fact]
    public void CheckPassesOnEveryGoldenCaseFolder()
    {
        var cases = Directory.GetDirectories(Golden.Dir).OrderBy(d => d).ToArray();
        Assert.True(cases.Length >= 20, $"expected the golden case folders in {Golden.Dir}");
        var (code, stdout, stderr) = CliProcess.Run(new[] { "check" }.Concat(cases).ToArray());
        Assert.True(code == 0, stdout + stderr);
        foreach (var c in cases)
            Assert.Contains($"PASS {c} (", stdout);
        Assert.DoesNotContain("FAIL", stdout);
    }

    [Fact]
    public void CheckFailsWithExitCodeOneWhenATensorIsOff()
    {
        var (code, stdout, _) = CliProcess.Run("check", Golden.Case("scheduler_pndm"), "--atol", "1e-12", "--rtol", "0");
        Assert.Equal(1, code);
        Assert.Contains("FAIL", stdout);
    }

    [Fact]
    public void SampleWritesOnePngPerPromptAndSeed()
    {
        var (code, stdout, stderr) = CliProcess.Run("sample", "--model", Golden.Case("pipeline_tiny_sd15"), "--prompt", "a red circle",
            "--prompt", "a blue square", "--steps", "3", "--batch", "2", "--seed", "10", "--scheduler", "euler", "--out", _tmp);
        Assert.True(code == 0, stdout + stderr);
        foreach (var f in new[] { "0_10.png", "0_11.png", "1_10.png", "1_11.png" })
            Assert.True(File.Exists(Path.Combine(_tmp, f)), f);
        Assert.Empty(Directory.GetFiles(_tmp, "*.tmp"));
    }

    [Fact]
    public void BadInputGivesOneErrorLineAndExitCodeTwo()
    {
        var (code, _, stderr) = CliProcess.Run("sample", "--model", Path.Combine(_tmp, "nope"), "--prompt", "x");
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains("nope", stderr);
        Assert.DoesNotContain("   at ", stderr); // no stack trace
        var bad = Path.Combine(_tmp, "bad.safetensors");
        File.WriteAllBytes(bad, new byte[] { 1, 2, 3 });
        (code, _, stderr) = CliProcess.Run("sample", "--model", Golden.Case("pipeline_tiny_sd15"), "--prompt", "x", "--scheduler", "nonsense");
        Assert.Equal(2, code);
        Assert.Contains("nonsense", stderr);
    }
}
