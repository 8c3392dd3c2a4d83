namespace FocusNFix.Distributed;

/// <summary>
/// Whether this process was started as one of several by an MPI launcher (mpirun, or Slurm's srun with PMI/PMIx),
/// read from the variables the launchers set. MPI stays optional: without them nothing loads libmpi and the job is a
/// <see cref="SingleProcess"/>.
/// </summary>
public static class MpiLaunch
{
    static IProcessGroup? _world;
    static readonly object Gate = new();

    /// <summary>The number of processes the launcher says the job has (1 without a launcher).</summary>
    public static int LaunchedSize()
    {
        foreach (var name in new[] { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE" })
            if (int.TryParse(Environment.GetEnvironmentVariable(name), out int n) && n > 0) return n;
        // srun with PMIx sets PMIX_RANK but no size variable of its own.
        if (Environment.GetEnvironmentVariable("PMIX_RANK") != null && int.TryParse(Environment.GetEnvironmentVariable("SLURM_NTASKS"), out int t) && t > 0)
            return t;
        return 1;
    }

    /// <summary>How many processes of the job share this machine (for the torch threads each may use).</summary>
    public static int LocalSize()
    {
        foreach (var name in new[] { "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE" })
            if (int.TryParse(Environment.GetEnvironmentVariable(name), out int n) && n > 0) return n;
        return LaunchedSize();
    }

    /// <summary>
    /// The job this process belongs to: MPI_COMM_WORLD when a launcher started several processes (MPI is initialised on
    /// the first call), else <see cref="SingleProcess"/>. The same object on every call.
    /// </summary>
    public static IProcessGroup World()
    {
        lock (Gate)
        {
            if (_world != null) return _world;
            int launched = LaunchedSize();
            if (launched <= 1) return _world = SingleProcess.Instance;
            var group = new MpiProcessGroup(OpenMpiLibrary.Open());
            if (group.Size != launched)
                throw new InvalidOperationException($"MPI reports {group.Size} processes but the launcher's environment says {launched}");
            return _world = group;
        }
    }
}
