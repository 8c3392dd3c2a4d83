using System.Runtime.InteropServices;

namespace FocusNFix.Distributed;

/// <summary>
/// The part of Open MPI's C API that data-parallel training uses, bound at run time. MPI.NET 1.4.0 (NuGet) binds to
/// MS-MPI's msmpi.dll and does not load on Linux, so this small binding speaks to libmpi directly. Open MPI's ABI is
/// assumed: its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM...) are the addresses of exported objects, not integers
/// as in MPICH. The library is opened with RTLD_GLOBAL because Open MPI's own plugins look up its symbols.
/// </summary>
sealed unsafe class OpenMpiLibrary
{
    /// <summary>Where libmpi is looked for (an environment variable names another file).</summary>
    public const string PathVariable = "FNF_MPI_LIBRARY";
    static readonly string[] DefaultNames = { "libmpi.so.40", "libmpi.so" };
    const int RtldNow = 2, RtldGlobal = 0x100;
    const int ThreadSerialized = 2;

    [DllImport("libc", EntryPoint = "dlopen")] static extern nint DlOpen(string file, int mode);
    [DllImport("libc", EntryPoint = "dlerror")] static extern nint DlError();

    public nint CommWorld { get; }
    public nint Float { get; }
    public nint Double { get; }
    public nint LongLong { get; }
    public nint Sum { get; }
    public string LoadedFrom { get; }

    readonly delegate* unmanaged<int*, nint*, int, int*, int> _initThread;
    readonly delegate* unmanaged<int*, int> _initialized;
    readonly delegate* unmanaged<int*, int> _finalized;
    readonly delegate* unmanaged<nint, int*, int> _commRank;
    readonly delegate* unmanaged<nint, int*, int> _commSize;
    readonly delegate* unmanaged<void*, void*, int, nint, nint, nint, int> _allreduce;
    readonly delegate* unmanaged<void*, int, nint, int, nint, int> _bcast;
    readonly delegate* unmanaged<nint, int> _barrier;
    readonly delegate* unmanaged<nint, int, int> _abort;
    readonly delegate* unmanaged<int> _finalize;

    OpenMpiLibrary(nint handle, string from)
    {
        LoadedFrom = from;
        nint Sym(string name) => NativeLibrary.TryGetExport(handle, name, out var p) ? p
            : throw new InvalidInputException($"{from}: no symbol '{name}': expected Open MPI's libmpi (this binding speaks Open MPI's ABI; set {PathVariable} to its libmpi.so)");
        CommWorld = Sym("ompi_mpi_comm_world");
        Float = Sym("ompi_mpi_float");
        Double = Sym("ompi_mpi_double");
        LongLong = Sym("ompi_mpi_long_long_int");
        Sum = Sym("ompi_mpi_op_sum");
        _initThread = (delegate* unmanaged<int*, nint*, int, int*, int>)Sym("MPI_Init_thread");
        _initialized = (delegate* unmanaged<int*, int>)Sym("MPI_Initialized");
        _finalized = (delegate* unmanaged<int*, int>)Sym("MPI_Finalized");
        _commRank = (delegate* unmanaged<nint, int*, int>)Sym("MPI_Comm_rank");
        _commSize = (delegate* unmanaged<nint, int*, int>)Sym("MPI_Comm_size");
        _allreduce = (delegate* unmanaged<void*, void*, int, nint, nint, nint, int>)Sym("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, nint, int, nint, int>)Sym("MPI_Bcast");
        _barrier = (delegate* unmanaged<nint, int>)Sym("MPI_Barrier");
        _abort = (delegate* unmanaged<nint, int, int>)Sym("MPI_Abort");
        _finalize = (delegate* unmanaged<int>)Sym("MPI_Finalize");
    }

    /// <summary>Opens libmpi (<see cref="PathVariable"/> or the default names), or says why it cannot.</summary>
    public static OpenMpiLibrary Open()
    {
        var names = Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } given ? new[] { given } : DefaultNames;
        var errors = new List<string>();
        foreach (var name in names)
        {
            var handle = DlOpen(name, RtldNow | RtldGlobal);
            if (handle != 0) return new OpenMpiLibrary(handle, name);
            errors.Add(Marshal.PtrToStringUTF8(DlError()) ?? name);
        }
        throw new InvalidInputException($"{string.Join(", ", names)}: the process was started by an MPI launcher but Open MPI's library cannot be loaded ({string.Join("; ", errors)}): install Open MPI (Debian: openmpi-bin libopenmpi-dev) or set {PathVariable}");
    }

    static void Check(int code, string call)
    {
        // MPI's default error handler aborts the job before a failing call returns; this is the belt to its braces.
        if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error code {code}");
    }

    public void Init()
    {
        int already;
        Check(_initialized(&already), "MPI_Initialized");
        if (already != 0) return;
        int provided;
        Check(_initThread(null, null, ThreadSerialized, &provided), "MPI_Init_thread");
        if (provided < ThreadSerialized)
            throw new InvalidOperationException($"MPI_Init_thread: the MPI library gives thread level {provided}; training needs MPI_THREAD_SERIALIZED ({ThreadSerialized})");
    }

    public int Rank { get { int r; Check(_commRank(CommWorld, &r), "MPI_Comm_rank"); return r; } }
    public int Size { get { int s; Check(_commSize(CommWorld, &s), "MPI_Comm_size"); return s; } }

    /// <summary>In-place sum over all ranks; <paramref name="count"/> elements of <paramref name="type"/> at <paramref name="buffer"/>.</summary>
    public void AllReduceSumInPlace(void* buffer, int count, nint type) =>
        Check(_allreduce((void*)1 /* MPI_IN_PLACE in Open MPI */, buffer, count, type, Sum, CommWorld), "MPI_Allreduce");

    public void Broadcast(void* buffer, int count, nint type, int root) => Check(_bcast(buffer, count, type, root, CommWorld), "MPI_Bcast");
    public void Barrier() => Check(_barrier(CommWorld), "MPI_Barrier");
    public void Abort(int code) => _abort(CommWorld, code);

    /// <summary>Finalizes once (a no-op when MPI was finalized already).</summary>
    public void FinalizeOnce()
    {
        int done;
        if (_finalized(&done) == 0 && done == 0) _finalize();
    }
}
