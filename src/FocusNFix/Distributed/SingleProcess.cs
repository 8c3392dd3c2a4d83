namespace FocusNFix.Distributed;

/// <summary>A job of one process (no launcher): every collective is the identity.</summary>
public sealed class SingleProcess : IProcessGroup
{
    public static readonly SingleProcess Instance = new();
    SingleProcess() { }
    public int Rank => 0;
    public int Size => 1;
    public void AllReduceSum(float[] values) { }
    public void AllReduceSum(double[] values) { }
    public void Broadcast(float[] values, int root) { }
    public void Broadcast(long[] values, int root) { }
    public void Barrier() { }
    public void Abort(int exitCode) => Environment.Exit(exitCode);
}
