using System.Runtime.InteropServices;

namespace FocusNFix.Distributed;

/// <summary>
/// MPI_COMM_WORLD as a process group. Buffers longer than an MPI count (an int) go in pieces. MPI is finalized when
/// the process exits normally; a member that fails must <see cref="Abort"/> instead (a finalize would wait for the
/// others, which wait for it).
/// </summary>
sealed unsafe class MpiProcessGroup : IProcessGroup
{
    const int Piece = 1 << 28;
    readonly OpenMpiLibrary _mpi;
    public int Rank { get; }
    public int Size { get; }

    public MpiProcessGroup(OpenMpiLibrary mpi)
    {
        _mpi = mpi;
        _mpi.Init();
        Rank = _mpi.Rank;
        Size = _mpi.Size;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => _mpi.FinalizeOnce();
        // The launcher stops the survivors with SIGTERM when a member dies (kill -9, a crash): say so on every one of
        // them. The signal then ends the process as before (the run lock's own handler releases the lock).
        _terminated = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ =>
            Console.Error.WriteLine($"error: rank {Rank} of {Size}: stopped by the MPI launcher (SIGTERM): another process of the job failed or died, or the job was cancelled (a failed process printed its own error line); a training run keeps its newest checkpoint: fnf train --resume continues it"));
    }

    readonly PosixSignalRegistration _terminated;

    public void AllReduceSum(float[] values)
    {
        fixed (float* p = values)
            for (int start = 0; start < values.Length; start += Piece)
                _mpi.AllReduceSumInPlace(p + start, Math.Min(Piece, values.Length - start), _mpi.Float);
    }

    public void AllReduceSum(double[] values)
    {
        fixed (double* p = values)
            for (int start = 0; start < values.Length; start += Piece)
                _mpi.AllReduceSumInPlace(p + start, Math.Min(Piece, values.Length - start), _mpi.Double);
    }

    public void Broadcast(float[] values, int root)
    {
        fixed (float* p = values)
            for (int start = 0; start < values.Length; start += Piece)
                _mpi.Broadcast(p + start, Math.Min(Piece, values.Length - start), _mpi.Float, root);
    }

    public void Broadcast(long[] values, int root)
    {
        fixed (long* p = values)
            for (int start = 0; start < values.Length; start += Piece)
                _mpi.Broadcast(p + start, Math.Min(Piece, values.Length - start), _mpi.LongLong, root);
    }

    public void Barrier() => _mpi.Barrier();

    public void Abort(int exitCode)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        _mpi.Abort(exitCode);
    }
}
