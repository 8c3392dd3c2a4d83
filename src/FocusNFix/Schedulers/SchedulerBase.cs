using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>
/// What every diffusers scheduler shares: the config, the training noise schedule and config validation.
/// Scalars from the schedule are computed in float32 on the host, in the order diffusers evaluates its
/// 0-d float32 tensors, and enter the graph as constants; only the sample and model output are tensors.
/// </summary>
public abstract class SchedulerBase : IScheduler, IDisposable
{
    Tensor _timesteps;

    /// <summary>alphas_cumprod on the host, for scalar math.</summary>
    protected float[] Ac;

    protected SchedulerBase(JsonConfig config, bool allowSigmoid = false, bool allowRescale = true)
    {
        Config = config;
        NumTrainTimesteps = config.Int("num_train_timesteps", 1000);
        if (NumTrainTimesteps < 2) throw Bad("num_train_timesteps", NumTrainTimesteps, "an integer >= 2");
        Betas = ScheduleMath.Betas(config, NumTrainTimesteps, allowSigmoid, allowRescale).DetachFromDisposeScope();
        AlphasCumprod = ScheduleMath.AlphasCumprod(Betas).DetachFromDisposeScope();
        Ac = AlphasCumprod.data<float>().ToArray();
        _timesteps = arange(NumTrainTimesteps - 1, -1, -1, dtype: ScalarType.Int64).DetachFromDisposeScope();
    }

    public JsonConfig Config { get; }
    public abstract string ClassName { get; }
    public int NumTrainTimesteps { get; }
    /// <summary>float32 training betas.</summary>
    public Tensor Betas { get; }
    public Tensor AlphasCumprod { get; private set; }
    /// <summary>Replaced by every <see cref="SetTimesteps"/>, which disposes the previous tensor (index it for a handle of your own).</summary>
    public Tensor Timesteps
    {
        get => _timesteps;
        protected set
        {
            // A loop that calls SetTimesteps for every batch would otherwise leave one tensor per call to the garbage collector.
            if (!ReferenceEquals(_timesteps, value)) _timesteps.Dispose();
            _timesteps = value;
        }
    }
    /// <summary>Set by <see cref="SetTimesteps"/>; null before.</summary>
    public int? NumInferenceSteps { get; protected set; }
    /// <summary>The inference sigmas (float32, ending with the final sigma) for the sigma-based schedulers; else null.</summary>
    public virtual Tensor? Sigmas => null;
    public virtual double InitNoiseSigma => 1.0;

    public abstract void SetTimesteps(int numInferenceSteps);
    /// <summary>Identity for the DDPM-family schedulers; a new handle, so a caller may dispose it like any other result.</summary>
    public virtual Tensor ScaleModelInput(Tensor sample, Tensor timestep) => sample.alias();
    /// <summary>The DDPM-family schedulers do not scale: pure already.</summary>
    public virtual Tensor ScaleModelInput(Tensor sample, Tensor timestep, int stepIndex) => ScaleModelInput(sample, timestep);
    public abstract SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, Generator? generator = null, Tensor? noise = null);
    public abstract Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps);

    /// <summary>Frees the schedule's tensors (and a multistep scheduler's history).</summary>
    public virtual void Dispose()
    {
        _timesteps.Dispose();
        Betas.Dispose();
        AlphasCumprod.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Zero terminal SNR for the sigma-based schedulers: diffusers pins the last alphas_cumprod to 2^-24.</summary>
    protected void PinLastAlphaCumprod()
    {
        Ac[^1] = MathF.Pow(2f, -24f);
        var pinned = tensor(Ac).DetachFromDisposeScope();
        AlphasCumprod.Dispose();
        AlphasCumprod = pinned;
    }

    protected InvalidInputException Bad(string key, object? value, string expected) =>
        new($"{Config.Source}: key '{key}' = {value ?? "null"} is not supported by {ClassName}; expected {expected}");

    /// <summary>A string option that must be one of <paramref name="allowed"/>.</summary>
    protected string Choice(string key, string fallback, params string[] allowed)
    {
        var v = Config.String(key, fallback) ?? fallback;
        if (!allowed.Contains(v)) throw Bad(key, $"'{v}'", "one of " + string.Join(", ", allowed.Select(a => $"'{a}'")));
        return v;
    }

    protected void CheckSteps(int numInferenceSteps, int max)
    {
        if (numInferenceSteps < 1 || numInferenceSteps > max)
            throw new ArgumentOutOfRangeException(nameof(numInferenceSteps), numInferenceSteps,
                $"{ClassName}: the number of inference steps must be between 1 and {max} (num_train_timesteps {NumTrainTimesteps})");
    }

    protected int RequireSteps() => NumInferenceSteps ?? throw new InvalidOperationException($"{ClassName}: call SetTimesteps before Step");

    /// <summary>A training timestep used as an index into alphas_cumprod.</summary>
    protected int TrainIndex(Tensor timestep)
    {
        double t = ScheduleMath.HostScalar(timestep);
        if (t != Math.Floor(t) || t < 0 || t >= NumTrainTimesteps)
            throw new ArgumentException($"{ClassName}: timestep {t} is not an integer in [0, {NumTrainTimesteps})");
        return (int)t;
    }

    /// <summary>
    /// alphas_cumprod[timesteps] shaped to broadcast over <paramref name="like"/> (one per batch row), in its dtype and device.
    /// </summary>
    protected Tensor AlphaProdFor(Tensor timesteps, Tensor like)
    {
        var idx = timesteps.to(like.device).to_type(ScalarType.Int64).flatten();
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        return AlphasCumprod.to(like.device).to_type(like.dtype).index_select(0, idx).view(shape);
    }

    /// <summary>sqrt(ac) x0 + sqrt(1 - ac) noise: the DDPM forward process shared by DDIM, DDPM and PNDM.</summary>
    protected Tensor AddNoiseByAlphas(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var ac = AlphaProdFor(timesteps, originalSamples);
        var noisy = ac.sqrt() * originalSamples + (1.0 - ac).sqrt() * noise;
        return noisy.MoveToOuterDisposeScope();
    }

    /// <summary>diffusers' _threshold_sample (dynamic thresholding, Imagen): clamp to a per-sample quantile s, then divide by s.</summary>
    protected static Tensor ThresholdSample(Tensor sample, double ratio, double maxValue)
    {
        var dtype = sample.dtype;
        var shape = sample.shape;
        var x = dtype is ScalarType.Float32 or ScalarType.Float64 ? sample : sample.to_type(ScalarType.Float32);
        x = x.reshape(shape[0], -1);
        using var q = tensor(ratio, dtype: x.dtype, device: x.device);
        var s = x.abs().quantile(q, 1).clamp(1.0, maxValue).unsqueeze(1);
        return (x.clamp(-s, s) / s).reshape(shape).to_type(dtype);
    }

    /// <summary>A handle of <paramref name="t"/> that survives the caller's dispose scopes (for multistep history).</summary>
    protected static Tensor Keep(Tensor t) => t.alias().DetachFromDisposeScope();
}
