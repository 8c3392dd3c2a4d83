using System.Diagnostics;
using System.Text.Json;
using FocusNFix.Training;
using FocusNFix.Rewards;
using Xunit;

namespace FocusNFix.Tests.Cli;

/// <summary><c>fnf train</c>'s refusals around the run folder: one error line and exit code 2, nothing left behind.</summary>
public class RunFolderCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-cli-runfolder-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    string Config(string promptBytesFile)
    {
        var cfg = new TrainingConfig
        {
            Model = Golden.Case("pipeline_tiny_pixel"), OutputDir = Path.Combine(_tmp, "run"), Threads = 1,
            Prompts = new PromptConfig { File = promptBytesFile, SeedsPerPrompt = 1, Limit = null },
            Sampling = new SamplingConfig { Steps = 2, GuidanceScale = 2 },
            Rewards = new() { new RewardSpec { Type = "region-reward-model", Path = Path.Combine(Golden.Root, "models", "shapesworld", "reward-hazard") } },
            Train = new TrainLoopConfig { Steps = 1, BatchSize = 1 },
        };
        var path = Path.Combine(_tmp, "config.json");
        File.WriteAllText(path, cfg.ToJson());
        return path;
    }

    static string OneErrorLine(string stderr)
    {
        // libtorch's NNPACK start-up warnings are not ours (issue 10 silences them elsewhere).
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.Contains("NNPACK")).ToList();
        return Assert.Single(lines);
    }

    [Fact]
    public void ResumeWithOverwriteALockedFolderAndABinaryPromptFileAreOneLineErrors()
    {
        var prompts = Path.Combine(_tmp, "prompts.txt");
        File.WriteAllText(prompts, "a red circle\n");
        var config = Config(prompts);

        var (code, _, stderr) = CliProcess.Run("train", "--config", config, "--resume", "--overwrite");
        Assert.Equal(2, code);
        Assert.Contains("--resume and --overwrite exclude each other", OneErrorLine(stderr));

        // A lock held by a live process (this test process) on this host.
        var run = Path.Combine(_tmp, "run");
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, RunLock.FileName), JsonSerializer.Serialize(new
        {
            pid = Environment.ProcessId, host = Environment.MachineName,
            start_ticks = Process.GetCurrentProcess().StartTime.ToUniversalTime().Ticks,
        }));
        (code, _, stderr) = CliProcess.Run("train", "--config", config);
        Assert.Equal(2, code);
        Assert.Equal($"error: {Path.Combine(run, RunLock.FileName)}: another run (process {Environment.ProcessId}) is using this folder; wait for it to finish or choose another output_dir", OneErrorLine(stderr));
        Assert.Equal(new[] { RunLock.FileName }, Directory.GetFileSystemEntries(run).Select(Path.GetFileName));
        Directory.Delete(run, true);

        File.WriteAllBytes(prompts, new byte[] { (byte)'o', (byte)'k', (byte)'\n', 0xFF, 0xFE, (byte)'x' });
        (code, _, stderr) = CliProcess.Run("train", "--config", config);
        Assert.Equal(2, code);
        Assert.Equal($"error: {prompts}: line 2 (byte offset 3): invalid UTF-8; a prompt file must be UTF-8 text", OneErrorLine(stderr));
        Assert.False(Directory.Exists(run), "a failed start leaves no run folder");
    }
}
