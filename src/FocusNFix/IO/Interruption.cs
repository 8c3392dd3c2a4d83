using System.Runtime.InteropServices;

namespace FocusNFix.IO;

/// <summary>
/// Ctrl-C for a command-line process. .NET's default for SIGINT ends the process without running finally blocks, so a
/// write in flight would leave its temporary file behind. <see cref="ExitOnCtrlC"/> instead removes those files
/// (<see cref="AtomicFile.Abandon"/>), prints one line and exits with 130, the shell's code for a SIGINT death.
/// </summary>
public static class Interruption
{
    public const int ExitCode = 130;
    static PosixSignalRegistration? _registration;

    /// <summary>Installs the handler for the life of the process (idempotent).</summary>
    public static void ExitOnCtrlC()
    {
        _registration ??= PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true; // the default would end the process before the cleanup below
            int removed = AtomicFile.Abandon();
            Console.Error.WriteLine($"error: interrupted (Ctrl-C); {removed} temporary file(s) removed");
            Environment.Exit(ExitCode);
        });
    }
}
