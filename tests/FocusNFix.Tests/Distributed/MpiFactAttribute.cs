using Xunit;

namespace FocusNFix.Tests.Distributed;

/// <summary>
/// A test that runs fnf under mpirun: skipped, with the reason, where Open MPI's launcher is not installed (.ci/run
/// installs it, so CI runs these).
/// </summary>
public sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (Mpirun.Path is null) Skip = "mpirun not found on PATH: install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev; .ci/run does)";
    }
}

/// <summary>Runs the built fnf as an MPI job of local processes.</summary>
public static class Mpirun
{
    public static string? Path { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
        .Select(d => System.IO.Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);

    /// <summary>
    /// <c>mpirun -np N dotnet fnf.dll ARGS</c> (as root too, more processes than cores allowed). With
    /// <paramref name="rankEnv"/>, rank r of the job gets those extra variables (a shell sets them per rank).
    /// </summary>
    public static System.Diagnostics.ProcessStartInfo StartInfo(int processes, IReadOnlyDictionary<int, string>? rankEnv, params string[] fnfArgs)
    {
        var fnf = Cli.CliProcess.StartInfo(fnfArgs);
        var psi = new System.Diagnostics.ProcessStartInfo(Path!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--allow-run-as-root", "--oversubscribe", "-np", processes.ToString() }) psi.ArgumentList.Add(a);
        if (rankEnv is { Count: > 0 })
        {
            // sh -c 'case $OMPI_COMM_WORLD_RANK in 1) export X=...;; esac; exec "$@"' sh dotnet fnf.dll ...
            var cases = string.Join(" ", rankEnv.Select(kv => $"{kv.Key}) export {kv.Value};;"));
            foreach (var a in new[] { "sh", "-c", $"case $OMPI_COMM_WORLD_RANK in {cases} esac; exec \"$@\"", "sh" }) psi.ArgumentList.Add(a);
        }
        psi.ArgumentList.Add(fnf.FileName);
        foreach (var a in fnf.ArgumentList) psi.ArgumentList.Add(a);
        foreach (var (k, v) in fnf.Environment) if (v != null) psi.Environment[k] = v;
        // Containers often forbid the cross-memory attach Open MPI's shared-memory transport tries first.
        psi.Environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none";
        return psi;
    }

    public static (int ExitCode, string Output) Run(int processes, IReadOnlyDictionary<int, string>? rankEnv, TimeSpan timeout, params string[] fnfArgs)
    {
        using var p = System.Diagnostics.Process.Start(StartInfo(processes, rankEnv, fnfArgs))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(true);
            throw new TimeoutException($"mpirun -np {processes} fnf {string.Join(" ", fnfArgs)}: still running after {timeout.TotalSeconds} s");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
