namespace FocusNFix.Training;

/// <summary>One evaluation of the fixed validation set: target reward, each guard's score, and the median PSNR outside the mask against the base images.</summary>
public sealed record MonitorPoint(int Step, double TargetReward, IReadOnlyDictionary<string, double> Guards, double PsnrOutside);

/// <summary>Why an evaluation was flagged; null members did not fire.</summary>
public sealed record HackingFlag(int Step, string Reason);

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
