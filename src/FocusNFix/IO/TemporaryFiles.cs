namespace FocusNFix.IO;

/// <summary>
/// The temporary files of writes in flight. An interrupted process runs no finally block, so the signal handler
/// deletes them here (<see cref="Abandon"/>); files are created and renamed under one lock, so none appears or
/// becomes final after that.
/// </summary>
public sealed class TemporaryFiles
{
    /// <summary>The files of this process's <see cref="AtomicFile"/> writes.</summary>
    public static TemporaryFiles Process { get; } = new();

    readonly object _gate = new();
    readonly HashSet<string> _files = new(StringComparer.Ordinal);
    bool _abandoned;

    /// <summary>Creates <paramref name="tmp"/> (it must not exist) and tracks it; refused once abandoned.</summary>
    public FileStream Create(string tmp, string target)
    {
        lock (_gate)
        {
            RefuseIfAbandoned(target);
            _files.Add(tmp);
            return new FileStream(tmp, FileMode.CreateNew, FileAccess.Write);
        }
    }

    /// <summary>Renames <paramref name="tmp"/> over <paramref name="target"/>; refused once abandoned.</summary>
    public void Commit(string tmp, string target)
    {
        lock (_gate)
        {
            RefuseIfAbandoned(target);
            File.Move(tmp, target, overwrite: true);
            _files.Remove(tmp);
        }
    }

    /// <summary>Deletes <paramref name="tmp"/> if it is still there and stops tracking it.</summary>
    public void Release(string tmp)
    {
        lock (_gate)
        {
            _files.Remove(tmp);
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>Deletes every tracked file and refuses all later writes; returns how many files were deleted.</summary>
    public int Abandon()
    {
        lock (_gate)
        {
            _abandoned = true;
            int removed = 0;
            foreach (var tmp in _files)
            {
                if (!File.Exists(tmp)) continue;
                File.Delete(tmp);
                removed++;
            }
            _files.Clear();
            return removed;
        }
    }

    void RefuseIfAbandoned(string target)
    {
        if (_abandoned) throw new OperationCanceledException($"{target}: not written, the process is being interrupted");
    }
}
