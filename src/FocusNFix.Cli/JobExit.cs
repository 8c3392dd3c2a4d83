using FocusNFix.Distributed;

namespace FocusNFix.Cli;

/// <summary>
/// How a command ends inside an MPI job: a process that fails (an error line printed, a non-zero exit code, an
/// unexpected exception) aborts the whole job, because the others would otherwise wait for it in their next collective
/// operation. Outside a job it only runs the command.
/// </summary>
public static class JobExit
{
    public static int Run(Func<int> command)
    {
        var world = MpiLaunch.World();
        int code;
        try { code = command(); }
        catch (Exception e) when (world.Size > 1)
        {
            Console.Error.WriteLine($"error: rank {world.Rank} of {world.Size}: {e}");
            world.Abort(70);
            throw;
        }
        if (code != 0 && world.Size > 1) world.Abort(code);
        return code;
    }
}
