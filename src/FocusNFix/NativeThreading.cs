using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FocusNFix;

/// <summary>
/// Process-wide settings for libtorch's native thread pools, applied when this library loads, before the first torch
/// call loads libtorch.
/// <para>
/// MKL's multi-threaded GEMM in the libtorch 2.10 CPU build that TorchSharp 0.107 ships returned NaN or differing
/// gradients at random when the machine was loaded (issue 10): GradientCheckpointTests failed 3 to 5 of 8 tests per
/// run with the defaults and 0 of 8 with MKL_NUM_THREADS=1 (OMP_WAIT_POLICY, OMP_NUM_THREADS=2 and the CPU capability
/// changed nothing). So MKL runs single-threaded unless the user sets MKL_NUM_THREADS; ATen's own kernels and
/// convolutions keep their OpenMP threads (torch.set_num_threads, the config's <c>threads</c>).
/// </para>
/// .NET's Environment.SetEnvironmentVariable does not reach native getenv on Unix, hence libc's setenv.
/// </summary>
public static class NativeThreading
{
    [DllImport("libc", EntryPoint = "setenv")]
    static extern int SetEnv(string name, string value, int overwrite);

    /// <summary>The values set unless the user's environment already has them.</summary>
    public static readonly IReadOnlyDictionary<string, string> Defaults = new Dictionary<string, string> { ["MKL_NUM_THREADS"] = "1" };

    static bool _applied;

    /// <summary>Sets a native environment variable unless it is already set (before libtorch loads).</summary>
    public static void SetDefault(string name, string value)
    {
        if (Environment.GetEnvironmentVariable(name) is not null) return;
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) SetEnv(name, value, 0);
        Environment.SetEnvironmentVariable(name, value);
    }

    /// <summary>Applies <see cref="Defaults"/> (idempotent). Must run before libtorch is loaded to take effect.</summary>
    public static void Apply()
    {
        if (_applied) return;
        _applied = true;
        foreach (var (name, value) in Defaults) SetDefault(name, value);
    }

#pragma warning disable CA2255 // a module initializer is the one place guaranteed to run before any torch call made through this library
    [ModuleInitializer]
    internal static void OnLoad() => Apply();
#pragma warning restore CA2255
}
