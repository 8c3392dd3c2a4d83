using System.Text.Json;
using FocusNFix.IO;

namespace FocusNFix.Training;

/// <summary>One evaluation of the fixed validation set: target reward, each guard's score, and the median PSNR outside the mask against the base images.</summary>
/// <param name="Seconds">the evaluation's wall time, sampling and scoring (the monitor's cost; 0 in files written before it was recorded).</param>
public sealed record MonitorPoint(int Step, double TargetReward, IReadOnlyDictionary<string, double> Guards, double PsnrOutside, double Seconds = 0);

/// <summary>Why an evaluation was flagged; null members did not fire.</summary>
public sealed record HackingFlag(int Step, string Reason);

/// <summary>
/// monitor.json, which a run with train.monitor writes beside its log after every evaluation and the report reads:
/// one type for both sides, so the file cannot say what the reader does not understand.
/// </summary>
/// <param name="BestUnflaggedStep">the evaluation with the highest target reward that met the guards.</param>
/// <param name="StoppedAt">where train.stop_on_hacking ended the run (null: it ran on).</param>
/// <param name="LoraStep">the step whose LoRA a stopped run kept.</param>
/// <param name="Images">how many validation images each evaluation samples.</param>
public sealed record MonitorFile(IReadOnlyList<MonitorPoint> Evaluations, HackingFlag? FirstFlag, int? BestUnflaggedStep, int? StoppedAt, int? LoraStep, int Images)
{
    public const string Name = "monitor.json";

    // TrainingConfig's options: snake_case keys, unknown keys refused, and named literals (step 0's PSNR against itself is +Infinity).
    static JsonSerializerOptions Json => TrainingConfig.Json;

    public void Write(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Json) + "\n");

    public static MonitorFile Read(string path)
    {
        var file = StrictJson.Deserialize<MonitorFile>(InputFile.ReadAllText(path, "monitor file"), path, Json);
        if (file.Evaluations is null) throw new InvalidInputException($"{path}: no \"evaluations\": expected a run's monitor.json (an object with an \"evaluations\" array)");
        foreach (var e in file.Evaluations)
            if (e is null || e.Guards is null) throw new InvalidInputException($"{path}: an evaluation without its guards: expected {{\"step\": N, \"target_reward\": R, \"guards\": {{...}}, \"psnr_outside\": P}}");
        return file;
    }
}

/// <summary>
/// The reward-hacking rule: an evaluation is flagged when the target reward has improved on the first evaluation
/// (the base model, step 0) while some guard has dropped by more than its margin, or when the PSNR outside the mask is
/// under the budget. The best checkpoint is the evaluation with the highest target reward among those not flagged.
/// </summary>
public sealed class HackingRule
{
    /// <summary>The largest drop of a guard (in its own units, from its step-0 value) that is not hacking.</summary>
    public double GuardMargin { get; init; } = 0.05;
    /// <summary>How much the target must have improved before a guard's drop is read as hacking (noise below it is not).</summary>
    public double MinRewardGain { get; init; }
    /// <summary>The preservation floor (dB); null: PSNR alone never flags.</summary>
    public double? MinPsnrOutside { get; init; }

    /// <summary>The flag for <paramref name="point"/> against the first evaluation <paramref name="baseline"/>, or null.</summary>
    public HackingFlag? Check(MonitorPoint baseline, MonitorPoint point)
    {
        var reasons = new List<string>();
        bool improved = point.TargetReward > baseline.TargetReward + MinRewardGain;
        if (improved)
            foreach (var (name, start) in baseline.Guards)
            {
                if (!point.Guards.TryGetValue(name, out var now)) continue;
                double drop = start - now;
                if (drop > GuardMargin || double.IsNaN(now))
                    reasons.Add(FormattableString.Invariant($"{name} fell {drop:G3} (from {start:G4} to {now:G4}; margin {GuardMargin:G3}) while the target reward rose from {baseline.TargetReward:G4} to {point.TargetReward:G4}"));
            }
        if (MinPsnrOutside is double floor && point.PsnrOutside < floor)
            reasons.Add(FormattableString.Invariant($"median PSNR outside the mask {point.PsnrOutside:F1} dB is under the budget {floor:G4} dB"));
        return reasons.Count == 0 ? null : new HackingFlag(point.Step, string.Join("; ", reasons));
    }

    /// <summary>The step of the best evaluation that met the guards (highest target reward; the earliest on a tie), or null when none did.</summary>
    public int? BestStep(IReadOnlyList<MonitorPoint> points)
    {
        if (points.Count == 0) return null;
        var ok = points.Where(p => Check(points[0], p) is null).ToList();
        return ok.Count == 0 ? null : ok.OrderByDescending(p => p.TargetReward).ThenBy(p => p.Step).First().Step;
    }
}
