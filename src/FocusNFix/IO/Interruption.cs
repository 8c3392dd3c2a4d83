using System.Runtime.InteropServices;

namespace FocusNFix.IO;

/// <summary>
/// Ctrl-C for a command-line process. .NET's default for SIGINT ends the process without running finally blocks, so a
/// write in flight would leave its temporary file behind. <see cref="ExitOnCtrlC"/> instead removes those files
/// (<see cref="TemporaryFiles.Abandon"/>), prints one line and exits at once with 130, the shell's code for a SIGINT
/// death, without the runtime's shutdown (see the handler).
/// </summary>
public static class Interruption
{
    public const int ExitCode = 130;

    [DllImport("libc", EntryPoint = "_exit")]
    static extern void ExitNow(int status);
    static PosixSignalRegistration? _registration;

    /// <summary>Installs the handler for the life of the process (idempotent).</summary>
    public static void ExitOnCtrlC()
    {
        _registration ??= PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true; // the default would end the process before the cleanup below
            string cleanup;
            try { cleanup = $"{TemporaryFiles.Process.Abandon()} temporary file(s) removed"; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { cleanup = $"a temporary file could not be removed: {e.Message}"; }
            Console.Error.WriteLine($"error: interrupted (Ctrl-C); {cleanup}");
            Console.Out.Flush();
            Console.Error.Flush();
            // Not Environment.Exit: it runs libtorch's static destructors while the main thread is still inside a torch
            // call, which crashed the process with SIGSEGV instead of exiting with 130.
            ExitNow(ExitCode);
        });
    }
}
