using Xunit;

// One torch thread at a time. TorchSharp 0.107 hands implicitly converted Scalars to libtorch without keeping them
// alive, so a garbage collection triggered by another thread (another test class running in parallel) can free one in
// the middle of a native call: tests then fail at random with corrupt scalars or NaN. The CLI has one torch thread
// and keeps every tensor in a dispose scope; the suite runs the same way.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace FocusNFix.Tests
{
    static class TestModuleSetup
    {
        // Tests may call torch before touching a FocusNFix type; apply the library's native settings first.
#pragma warning disable CA2255
        [System.Runtime.CompilerServices.ModuleInitializer]
        internal static void Init()
        {
            // xunit runs tests on several threads, and each thread that calls libtorch gets its own OpenMP pool sized
            // from OMP_NUM_THREADS or the core count; one OpenMP thread everywhere keeps the suite on the CLI's setting.
            NativeSettings.SetDefault("OMP_NUM_THREADS", "1");
            NativeSettings.Apply();
        }
#pragma warning restore CA2255
    }
}
