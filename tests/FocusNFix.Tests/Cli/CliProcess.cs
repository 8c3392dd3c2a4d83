using System.Diagnostics;

namespace FocusNFix.Tests.Cli;

/// <summary>Runs the built fnf CLI (copied next to the test assembly) as a separate process.</summary>
public static class CliProcess
{
    static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => Run(null, null, DefaultTimeout, args);

    /// <summary>Runs fnf with extra environment variables (on top of this process's, which children inherit).</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunWith(IReadOnlyDictionary<string, string>? env, params string[] args) => Run(env, null, DefaultTimeout, args);

    /// <summary>Runs fnf with <paramref name="workingDirectory"/> as its current directory (null: the test's), where its relative default paths land.</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunIn(string? workingDirectory, params string[] args) => Run(null, workingDirectory, DefaultTimeout, args);

    /// <summary>As <see cref="RunIn(string?, string[])"/>, killed and reported as a <see cref="TimeoutException"/> after <paramref name="timeout"/>.</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunIn(string? workingDirectory, TimeSpan timeout, params string[] args) => Run(null, workingDirectory, timeout, args);

    static (int ExitCode, string Stdout, string Stderr) Run(IReadOnlyDictionary<string, string>? env, string? workingDirectory, TimeSpan timeout, string[] args)
    {
        using var p = Start(env, workingDirectory, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout)) { p.Kill(true); throw new TimeoutException($"fnf {string.Join(" ", args)}: still running after {timeout.TotalSeconds} s"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Starts fnf with stdout and stderr redirected; the caller reads them and waits (or kills it).</summary>
    public static Process Start(IReadOnlyDictionary<string, string>? env, params string[] args) => Start(env, null, args);

    static Process Start(IReadOnlyDictionary<string, string>? env, string? workingDirectory, string[] args)
    {
        var psi = StartInfo(args);
        if (workingDirectory != null) psi.WorkingDirectory = workingDirectory;
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        return Process.Start(psi)!;
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
