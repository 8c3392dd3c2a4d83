using System.Reflection;
using System.Runtime.InteropServices;

namespace FocusNFix.Evaluation;

/// <summary>
/// The versions and machine a report's figures came from: fnf's version and commit (the SDK stamps the commit into the
/// informational version when built from a git checkout), TorchSharp's version, torch's thread count (results are
/// bit-identical only at the same thread count), the CPU count, the OS and the .NET runtime.
/// </summary>
public static class RunEnvironment
{
    public static Dictionary<string, string> Describe()
    {
        var (version, commit) = Split(Informational(typeof(RunEnvironment).Assembly));
        return new Dictionary<string, string>
        {
            ["fnf"] = version,
            ["commit"] = commit,
            ["torchsharp"] = Split(Informational(typeof(TorchSharp.torch).Assembly)).Version,
            ["torch_threads"] = TorchSharp.torch.get_num_threads().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["cpu_cores"] = Environment.ProcessorCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["os"] = RuntimeInformation.OSDescription,
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
        };
    }

    static string Informational(Assembly a) =>
        a.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? a.GetName().Version?.ToString() ?? "unknown";

    /// <summary>"1.0.0+abc123" → ("1.0.0", "abc123"); no '+': the commit is "unknown".</summary>
    internal static (string Version, string Commit) Split(string informational)
    {
        int plus = informational.IndexOf('+');
        return plus < 0 ? (informational, "unknown") : (informational[..plus], informational[(plus + 1)..]);
    }
}
