using System.Runtime.InteropServices;

namespace FocusNFix.IO;

/// <summary>
/// The process's resident-set peak (VmHWM in /proc/self/status), resettable so that each measurement gets its own
/// peak: writing 5 to /proc/self/clear_refs sets VmHWM back to the current RSS (Linux 4.0+).
/// </summary>
public static class PeakRss
{
    /// <summary>Resets the peak to the current RSS; false where the kernel does not allow it (then peaks include earlier work).</summary>
    public static bool Reset()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    static extern int MallocTrim(nuint pad);

    /// <summary>
    /// Returns the C heap's free memory to the system (glibc malloc_trim), so a measurement's resident baseline is the
    /// memory in use, not what loading freed and glibc kept (a few hundred MiB after reading 4 GB of weights). The
    /// peer script does the same. False where there is no glibc.
    /// </summary>
    public static bool TrimHeap()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return MallocTrim(0) == 1; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    /// <summary>The peak RSS in MiB since the start or the last <see cref="Reset"/>; NaN off Linux.</summary>
    public static double PeakMiB() => ReadKiB("VmHWM:") / 1024.0;

    /// <summary>The current RSS in MiB; NaN off Linux.</summary>
    public static double CurrentMiB() => ReadKiB("VmRSS:") / 1024.0;

    static double ReadKiB(string field)
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return double.NaN;
        var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
        return line == null ? double.NaN : StatusKiB(line);
    }

    /// <summary>
    /// The value of one /proc/self/status memory line, "VmHWM:\t  123456 kB". The kernel pads the number to 8
    /// characters after the tab, so from 10,000,000 kB (9.5 GiB) on there is no space before it: the line must be
    /// split at the tab as well (a space-only split read "kB" and failed every 512 px figure that peaked above 9.5 GiB).
    /// </summary>
    public static long StatusKiB(string line)
    {
        var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2 || !long.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var kib))
            throw new FormatException($"/proc/self/status: expected a line like 'VmHWM:  123456 kB', got '{line}'");
        return kib;
    }
}
