using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>
/// The step-index bookkeeping diffusers' sigma-based schedulers (Euler, Euler-ancestral, DPM-Solver) share:
/// the first call locates the timestep in the schedule, later calls just advance.
/// </summary>
public abstract class SigmaSchedulerBase : SchedulerBase
{
    protected float[] SigmaValues = Array.Empty<float>();
    protected double[] TimestepValues = Array.Empty<double>();
    Tensor? _sigmas;

    protected SigmaSchedulerBase(FocusNFix.IO.JsonConfig config) : base(config) { }

    public override Tensor? Sigmas => _sigmas;
    /// <summary>Index of the next step; null until the first ScaleModelInput/Step after SetTimesteps.</summary>
    public int? StepIndex { get; protected set; }
    /// <summary>diffusers' begin_index: where an img2img loop starts; also used by AddNoise when set.</summary>
    public int? BeginIndex { get; private set; }
    public void SetBeginIndex(int beginIndex) => BeginIndex = beginIndex;

    protected void SetSchedule(float[] sigmas, Tensor timesteps)
    {
        SigmaValues = sigmas;
        _sigmas?.Dispose();
        _sigmas = tensor(sigmas).DetachFromDisposeScope();
        Timesteps = timesteps.DetachFromDisposeScope();
        TimestepValues = ScheduleMath.HostValues(Timesteps);
        StepIndex = null;
        BeginIndex = null;
    }

    public override void Dispose()
    {
        _sigmas?.Dispose();
        base.Dispose();
    }

    /// <summary>The position of <paramref name="t"/> in the schedule; the second match when it repeats (img2img starts mid-schedule).</summary>
    protected virtual int IndexForTimestep(double t)
    {
        var matches = Enumerable.Range(0, TimestepValues.Length).Where(i => TimestepValues[i] == t).Take(2).ToArray();
        if (matches.Length == 0) throw new ArgumentException($"{ClassName}: timestep {t} is not in the schedule");
        return matches.Length > 1 ? matches[1] : matches[0];
    }

    protected int CurrentIndex(Tensor timestep)
    {
        if (TimestepValues.Length == 0 || NumInferenceSteps is null) throw new InvalidOperationException($"{ClassName}: call SetTimesteps before Step");
        StepIndex ??= BeginIndex ?? IndexForTimestep(ScheduleMath.HostScalar(timestep));
        if (StepIndex.Value >= SigmaValues.Length - 1)
            throw new InvalidOperationException($"{ClassName}: Step called more often than there are timesteps ({TimestepValues.Length}); call SetTimesteps again");
        return StepIndex.Value;
    }

    /// <summary>Sigmas for each batch row of <paramref name="timesteps"/>, shaped to broadcast over <paramref name="like"/>.</summary>
    protected Tensor SigmasFor(Tensor timesteps, Tensor like)
    {
        if (_sigmas is null) throw new InvalidOperationException($"{ClassName}: call SetTimesteps before AddNoise");
        long[] indices = BeginIndex is null
            ? ScheduleMath.HostValues(timesteps).Select(t => (long)IndexForTimestep(t)).ToArray()
            : Enumerable.Repeat((long)(StepIndex ?? BeginIndex.Value), (int)Math.Max(1, timesteps.numel())).ToArray();
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        using var idx = tensor(indices);
        return _sigmas.index_select(0, idx).to(like.device).to_type(like.dtype).view(shape);
    }

    /// <summary>float32 training sigmas sqrt((1 - ac) / ac) and their float32 logs (numpy's np.log of a float32 array).</summary>
    protected (float[] Sigmas, float[] LogSigmas) TrainSigmaTable()
    {
        var s = ScheduleMath.TrainSigmas(Ac);
        return (s, s.Select(v => MathF.Log(v)).ToArray());
    }

    /// <summary>Timesteps for leading/trailing/linspace as the Euler schedulers compute them (float64 before the float32 cast).</summary>
    /// <summary>Euler-family init_noise_sigma: sigma_max for linspace/trailing spacing, sqrt(sigma_max^2 + 1) otherwise.</summary>
    protected double EulerInitNoiseSigma(string spacing)
    {
        float max = SigmaValues.Max();
        return spacing is "linspace" or "trailing" ? max : MathF.Sqrt(max * max + 1f);
    }

    /// <summary>Euler-family scale_model_input: sample / sqrt(sigma^2 + 1) at the current timestep.</summary>
    protected Tensor ScaleBySigma(Tensor sample, Tensor timestep) => ScaleBySigmaAt(sample, CurrentIndex(timestep));

    /// <summary>The same at an explicit schedule position; reads no step counter.</summary>
    protected Tensor ScaleBySigmaAt(Tensor sample, int stepIndex)
    {
        if (stepIndex < 0 || stepIndex >= SigmaValues.Length - 1)
            throw new ArgumentOutOfRangeException(nameof(stepIndex), stepIndex, $"{ClassName}: no step {stepIndex} in a schedule of {SigmaValues.Length - 1} steps");
        float sigma = SigmaValues[stepIndex];
        return sample / MathF.Sqrt(sigma * sigma + 1f);
    }

    protected static double[] EulerTimesteps(string spacing, int numTrain, int n, int stepsOffset) => spacing switch
    {
        "linspace" => ScheduleMath.Linspace(0, numTrain - 1, n).Select(v => (double)(float)v).Reverse().ToArray(),
        "leading" => Enumerable.Range(0, n).Select(i => (double)((float)((long)i * (numTrain / n)) + stepsOffset)).Reverse().ToArray(),
        "trailing" => ScheduleMath.Arange(numTrain, 0, -(double)numTrain / n).Select(v => (double)((float)ScheduleMath.Round(v) - 1f)).ToArray(),
        _ => throw new ArgumentException(spacing),
    };
}
