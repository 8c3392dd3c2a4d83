using System.Diagnostics;

namespace FocusNFix;

/// <summary>
/// Test hook, not a user feature: with the environment variable <c>FNF_TEST_KILL_AT=&lt;point&gt;:&lt;detail&gt;</c> the
/// process kills itself with SIGKILL (no finally blocks, no flushing: what <c>kill -9</c> does) when it reaches that
/// point, so the kill/resume test can stop a run at an exact moment instead of racing a timer. Points:
/// <c>after-step:N</c> (step N's log row written), <c>checkpoint-write:N</c> (inside the write of checkpoint step-N),
/// <c>resume:N</c> (a resumed run has loaded its checkpoint of step N) and <c>atomic-write:FILENAME</c> (a file's
/// temporary copy is complete, before the rename).
/// </summary>
public static class KillPoint
{
    public const string Variable = "FNF_TEST_KILL_AT";
    static readonly string? Target = Environment.GetEnvironmentVariable(Variable);

    public static void Reached(string point, object detail)
    {
        if (Target is null || Target != $"{point}:{detail}") return;
        Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }
}
