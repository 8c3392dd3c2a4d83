using System.Diagnostics;

namespace FocusNFix.Tests.Cli;

/// <summary>Runs the built fnf CLI (copied next to the test assembly) as a separate process.</summary>
public static class CliProcess
{
    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args) => Run(null, null, args);

    /// <summary>Runs fnf with extra environment variables (on top of this process's, which children inherit).</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunWith(IReadOnlyDictionary<string, string>? env, params string[] args) => Run(env, null, args);

    /// <summary>Runs fnf with <paramref name="workingDirectory"/> as its current directory (null: the test's), where its relative default paths land.</summary>
    public static (int ExitCode, string Stdout, string Stderr) RunIn(string? workingDirectory, params string[] args) => Run(null, workingDirectory, args);

    static (int ExitCode, string Stdout, string Stderr) Run(IReadOnlyDictionary<string, string>? env, string? workingDirectory, string[] args)
    {
        using var p = Start(env, workingDirectory, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(true); throw new TimeoutException("fnf " + string.Join(" ", args)); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Starts fnf with stdout and stderr redirected; the caller reads them and waits (or kills it).</summary>
    public static Process Start(IReadOnlyDictionary<string, string>? env, params string[] args) => Start(env, null, args);

    static Process Start(IReadOnlyDictionary<string, string>? env, string? workingDirectory, string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "fnf.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory != null) psi.WorkingDirectory = workingDirectory;
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["COLUMNS"] = "200";
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }
}
