using System.Runtime;

namespace FocusNFix;

/// <summary>
/// Holds off .NET garbage collection while a unit of libtorch work runs (one training step, one sampling batch).
/// <para>
/// Why: TorchSharp 0.107 passes the native handle of an implicitly converted <c>Scalar</c> (every <c>tensor * 0.5</c>)
/// and of a tensor not owned by a dispose scope to libtorch without keeping the .NET object alive. If a collection
/// runs during that native call (triggered by another thread), the object is found dead and its finalizer frees the
/// native value while libtorch still reads it: seen as "Unknown scalar type" and a failed Scalar.toFloat check inside
/// at::mul(Tensor, Scalar) when test classes ran in parallel (issue 10). Inside a pause no collection can run, so
/// nothing in flight is freed; the garbage is collected at the start of the next pause, when this thread is in managed
/// code and nothing of its own is in flight. (The random NaN gradients of issue 10 are a different problem; see
/// <see cref="NativeSettings"/>.)
/// </para>
/// Nested pauses are no-ops. If a unit allocates more managed memory than the budget, the runtime ends the pause
/// early (collections resume); the budget is far above what a step allocates (a few MB of wrappers).
/// </summary>
public sealed class TorchGcPause : IDisposable
{
    /// <summary>Managed bytes a paused unit may allocate before the runtime ends the pause.</summary>
    public const long Budget = 64L << 20;

    readonly bool _started;

    TorchGcPause()
    {
        if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) return;
        // Collect and finalize now, at a safe point: whatever dies here is not in use by a native call.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        try { _started = GC.TryStartNoGCRegion(Budget); }
        catch (InvalidOperationException) { _started = false; }
        // The region's own collection may have queued finalizers: let them finish before the unit starts.
        GC.WaitForPendingFinalizers();
    }

    /// <summary>Starts a pause (or joins the one in progress); dispose it when the unit of work ends.</summary>
    public static TorchGcPause Begin() => new();

    /// <summary>True while collections are held off.</summary>
    public static bool Active => GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;

    public void Dispose()
    {
        // The runtime may already have ended the region (budget exceeded); EndNoGCRegion would then throw.
        if (_started && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
    }
}
