using FocusNFix.IO;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests;

/// <summary>Access to ../shared/golden (relative to the repository root) and tensor comparisons.</summary>
public static class Golden
{
    static readonly Lazy<string> RepoRoot = new(() =>
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "FocusNFix.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root (FocusNFix.slnx) not found above " + AppContext.BaseDirectory);
    });

    public static string Root => RepoRoot.Value;
    public static string Dir => Path.GetFullPath(Path.Combine(RepoRoot.Value, "..", "shared", "golden"));
    public static string Case(string name) => Path.Combine(Dir, name);

    public static Dictionary<string, Tensor> Inputs(string caseName) => Safetensors.Load(Path.Combine(Case(caseName), "inputs.safetensors"));
    public static Dictionary<string, Tensor> Outputs(string caseName) => Safetensors.Load(Path.Combine(Case(caseName), "outputs.safetensors"));

    /// <summary>Max absolute error; fails if any |a - e| > atol + rtol * |e| (numpy's allclose rule).</summary>
    public static double AssertClose(Tensor expected, Tensor actual, double atol, double rtol = 0, string name = "")
    {
        Assert.True(expected.shape.SequenceEqual(actual.shape),
            $"{name}: shape [{string.Join(",", actual.shape)}] != expected [{string.Join(",", expected.shape)}]");
        using var e = expected.detach().cpu().to(float64);
        using var a = actual.detach().cpu().to(float64);
        using var diff = (a - e).abs();
        double maxErr = diff.numel() == 0 ? 0 : diff.max().item<double>();
        using var bound = atol + rtol * e.abs();
        bool ok = diff.le(bound).all().item<bool>();
        Assert.True(ok, $"{name}: max abs error {maxErr:E3} exceeds atol {atol:E1} + rtol {rtol:E1}");
        return maxErr;
    }
}
