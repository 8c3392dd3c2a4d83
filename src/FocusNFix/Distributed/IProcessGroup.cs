namespace FocusNFix.Distributed;

/// <summary>
/// The processes of one data-parallel job and the collective operations training needs. Every member calls the same
/// operations in the same order with buffers of the same length (MPI's rule); a member that stops calling them (an
/// error, a kill) ends the job through <see cref="Abort"/> or the launcher, never by leaving the others waiting.
/// </summary>
public interface IProcessGroup
{
    /// <summary>This process's index, 0 to <see cref="Size"/> - 1; rank 0 alone writes the run's files.</summary>
    int Rank { get; }
    int Size { get; }
    /// <summary>Replaces each element by its sum over all members.</summary>
    void AllReduceSum(float[] values);
    void AllReduceSum(double[] values);
    /// <summary>Replaces the buffer on every member by rank <paramref name="root"/>'s.</summary>
    void Broadcast(float[] values, int root);
    void Broadcast(long[] values, int root);
    void Barrier();
    /// <summary>Ends every member of the job with <paramref name="exitCode"/> (a member that failed calls it so the others do not wait forever).</summary>
    void Abort(int exitCode);
}
