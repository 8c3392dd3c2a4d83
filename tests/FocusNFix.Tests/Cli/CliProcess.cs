using System.Diagnostics;

namespace FocusNFix.Tests.Cli;

/// <summary>Runs the built fnf CLI (copied next to the test assembly) as a separate process.</summary>
public static class CliProcess
{
    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => RunIn(null, TimeSpan.FromMinutes(5), args);

    /// <summary>
    /// As <see cref="Run"/>, in <paramref name="workingDirectory"/> (where relative default outputs would land), killed
    /// and reported as a <see cref="TimeoutException"/> after <paramref name="timeout"/>.
    /// </summary>
    public static (int ExitCode, string Stdout, string Stderr) RunIn(string? workingDirectory, TimeSpan timeout, params string[] args)
    {
        var psi = StartInfo(args);
        if (workingDirectory != null) psi.WorkingDirectory = workingDirectory;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout)) { p.Kill(true); throw new TimeoutException($"fnf {string.Join(" ", args)}: still running after {timeout.TotalSeconds} s"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>How the built fnf is started: <c>dotnet fnf.dll ARGS</c>, output redirected.</summary>
    public static ProcessStartInfo StartInfo(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // FNF_TEST_CLI runs the CLI tests against another build's fnf.dll (to see which checks an older build fails).
        psi.ArgumentList.Add(Environment.GetEnvironmentVariable("FNF_TEST_CLI") is { Length: > 0 } other ? other : Path.Combine(AppContext.BaseDirectory, "fnf.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["COLUMNS"] = "200";
        return psi;
    }
}
