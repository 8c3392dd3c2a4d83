using Spectre.Console;
using Spectre.Console.Rendering;

namespace FocusNFix.Cli;

/// <summary>
/// A progress bar on a terminal; plain progress lines otherwise (Spectre prints nothing when stdout is
/// not a TTY, as in CI and log files).
/// </summary>
public static class Progress
{
    public static T Run<T>(string description, Func<Action<int, int>, T> work) =>
        RunWithStatus(description, report => work((d, t) => report(d, t, null)));

    /// <summary>Like <see cref="Run{T}"/>, with a live status text (loss, reward, ...) beside the bar.</summary>
    public static T RunWithStatus<T>(string description, Func<Action<int, int, string?>, T> work)
    {
        if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            T result = default!;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RateColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(description, maxValue: 1);
                    result = work((done, total, status) =>
                    {
                        task.MaxValue = total;
                        task.Value = done;
                        if (status != null) task.Description = $"{description} [grey]{Markup.Escape(status)}[/]";
                    });
                });
            return result;
        }
        return work(PlainLines(description));
    }

    /// <summary>
    /// Work in named phases (sampling, training, evaluating) that reports (phase, done, total, status): one bar per
    /// phase on a terminal, progress lines named by the phase otherwise.
    /// </summary>
    public static T RunPhases<T>(Func<Action<string, int, int, string?>, T> work)
    {
        if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            T result = default!;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RateColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    ProgressTask? task = null;
                    string? current = null;
                    result = work((phase, done, total, status) =>
                    {
                        if (phase != current || task == null)
                        {
                            if (task != null) task.Value = task.MaxValue;
                            task = ctx.AddTask(Markup.Escape(phase), maxValue: Math.Max(total, 1));
                            current = phase;
                        }
                        task.MaxValue = Math.Max(total, 1);
                        task.Value = done;
                        if (status != null) task.Description = $"{Markup.Escape(phase)} [grey]{Markup.Escape(status)}[/]";
                    });
                    if (task != null) task.Value = task.MaxValue;
                });
            return result;
        }
        string? phaseNow = null;
        Action<int, int, string?>? lines = null;
        return work((phase, done, total, status) =>
        {
            if (phase != phaseNow || lines == null) { phaseNow = phase; lines = PlainLines(phase); }
            lines(done, total, status);
        });
    }

    /// <summary>
    /// Work that reports (task, done, total, status) for several tasks at once, from any thread (the demo's parallel
    /// jobs): one bar per task on a terminal, progress lines named by the task otherwise.
    /// </summary>
    public static void RunTasks(Action<Action<string, int, int, string?>> work)
    {
        if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RateColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var tasks = new Dictionary<string, ProgressTask>();
                    work((name, done, total, status) =>
                    {
                        lock (tasks)
                        {
                            if (!tasks.TryGetValue(name, out var task)) tasks[name] = task = ctx.AddTask(Markup.Escape(name), maxValue: Math.Max(total, 1));
                            task.MaxValue = Math.Max(total, 1);
                            task.Value = done;
                            if (status != null) task.Description = $"{Markup.Escape(name)} [grey]{Markup.Escape(status)}[/]";
                        }
                    });
                });
            return;
        }
        // Without a terminal: a line per tenth of each task (no rate: a task's first report may come minutes into it).
        var last = new Dictionary<string, (int Percent, int Total)>();
        work((name, done, total, status) =>
        {
            lock (last)
            {
                int percent = total == 0 ? 100 : done * 100 / total;
                if (last.TryGetValue(name, out var l) && l.Total == total && l.Percent / 10 == percent / 10 && done != total) return;
                last[name] = (percent, total);
                Console.WriteLine($"{name}: {done}/{total} ({percent}%){(status != null ? ", " + status : "")}");
            }
        });
    }

    /// <summary>
    /// Plain progress lines: one per tenth of the work and one at the end. Work that counts again from the start (a
    /// sweep's evaluation reports each setting's images from 0) restarts the clock, so the time and rate on a line are
    /// those of the pass it counts, not of everything before it.
    /// </summary>
    public static Action<int, int, string?> PlainLines(string description, TextWriter? output = null, Func<DateTime>? clock = null)
    {
        output ??= Console.Out;
        clock ??= () => DateTime.UtcNow;
        int lastPercent = -1, lastDone = -1;
        var started = clock();
        return (done, total, status) =>
        {
            if (done < lastDone) { started = clock(); lastPercent = -1; }
            lastDone = done;
            int percent = total == 0 ? 100 : done * 100 / total;
            if (percent / 10 != lastPercent / 10 || done == total)
            {
                double seconds = (clock() - started).TotalSeconds;
                output.WriteLine($"{description}: {done}/{total} ({percent}%, {seconds:F1}s, {Rate(done, seconds)}){(status != null ? ", " + status : "")}");
                lastPercent = percent;
            }
        };
    }

    /// <summary>Iterations per second, as diffusers' tqdm bars show it (s/it when slower than one per second).</summary>
    public static string Rate(double done, double seconds) =>
        done <= 0 || seconds <= 0 ? "-- it/s" : done >= seconds ? $"{done / seconds:F2} it/s" : $"{seconds / done:F2} s/it";

    sealed class RateColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.Speed is double v and > 0 ? Rate(v, 1) : "-- it/s", new Style(Color.Grey));
    }
}
