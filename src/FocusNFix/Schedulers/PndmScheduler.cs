using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>
/// diffusers 0.27.2 PNDMScheduler (pseudo linear multistep). With skip_prk_steps (the SD default) the
/// schedule repeats its second timestep (901, 801, 801, 701, ...): N + 1 model calls for N steps, the first
/// two forming a Heun-like warm-up. Without it, Runge-Kutta warm-up steps come first.
/// </summary>
public sealed class PndmScheduler : SchedulerBase
{
    const int PndmOrder = 4;
    readonly float _finalAlphaCumprod;
    readonly List<Tensor> _ets = new();
    long[] _prkTimesteps = Array.Empty<long>();
    Tensor? _curModelOutput;
    Tensor? _curSample;
    int _counter;

    public PndmScheduler(JsonConfig config) : base(config, allowRescale: false)
    {
        SkipPrkSteps = config.Bool("skip_prk_steps", false);
        PredictionType = Choice("prediction_type", "epsilon", "epsilon", "v_prediction");
        TimestepSpacing = Choice("timestep_spacing", "leading", "linspace", "leading", "trailing");
        StepsOffset = config.Int("steps_offset", 0);
        _finalAlphaCumprod = config.Bool("set_alpha_to_one", false) ? 1f : Ac[0];
    }

    public override string ClassName => "PNDMScheduler";
    public bool SkipPrkSteps { get; }
    public string PredictionType { get; }
    public string TimestepSpacing { get; }
    public int StepsOffset { get; }

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckSteps(numInferenceSteps, NumTrainTimesteps);
        int n = numInferenceSteps, T = NumTrainTimesteps;
        long[] asc = TimestepSpacing switch
        {
            "linspace" => ScheduleMath.Linspace(0, T - 1, n).Select(v => (long)ScheduleMath.Round(v)).ToArray(),
            "leading" => Enumerable.Range(0, n).Select(i => (long)i * (T / n) + StepsOffset).ToArray(),
            _ => ScheduleMath.Arange(T, 0, -(double)T / n).Select(v => (long)ScheduleMath.Round(v) - 1).Reverse().ToArray(),
        };
        long[] plms;
        if (SkipPrkSteps)
        {
            _prkTimesteps = Array.Empty<long>();
            // [t0, ..., t(n-2), t(n-2), t(n-1)] reversed: the second timestep repeats.
            var repeated = n >= 2 ? new[] { asc[^2] } : Array.Empty<long>(); // numpy's asc[-2:-1] is empty for one step
            plms = asc[..^1].Concat(repeated).Append(asc[^1]).Reverse().ToArray();
        }
        else
        {
            if (n < PndmOrder) throw new ArgumentOutOfRangeException(nameof(numInferenceSteps), n, $"{ClassName}: needs at least {PndmOrder} steps without skip_prk_steps");
            long half = T / n / 2;
            var prk = asc[^PndmOrder..].SelectMany(t => new[] { t, t + half }).ToArray(); // repeat(2) + tile([0, half])
            // prk[:-1].repeat(2)[1:-1][::-1]
            var rep = prk[..^1].SelectMany(t => new[] { t, t }).ToArray();
            _prkTimesteps = rep[1..^1].Reverse().ToArray();
            plms = asc[..^3].Reverse().ToArray();
        }
        Timesteps = tensor(_prkTimesteps.Concat(plms).ToArray()).DetachFromDisposeScope();
        NumInferenceSteps = n;
        ResetState();
    }

    public override void Dispose()
    {
        ResetState();
        base.Dispose();
    }

    void ResetState()
    {
        foreach (var e in _ets) e.Dispose();
        _ets.Clear();
        _curModelOutput?.Dispose(); _curModelOutput = null;
        _curSample?.Dispose(); _curSample = null;
        _counter = 0;
    }

    public override SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, Generator? generator = null, Tensor? noise = null)
    {
        int n = RequireSteps();
        int t = TrainIndex(timestep);
        using var scope = NewDisposeScope();
        var prev = _counter < _prkTimesteps.Length && !SkipPrkSteps ? StepPrk(modelOutput, t, sample, n) : StepPlms(modelOutput, t, sample, n);
        _counter++;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), null);
    }

    Tensor StepPrk(Tensor modelOutput, int timestep, Tensor sample, int n)
    {
        long diffToPrev = _counter % 2 == 1 ? 0 : NumTrainTimesteps / n / 2;
        long prevT = timestep - diffToPrev;
        long t = _prkTimesteps[_counter / 4 * 4];
        switch (_counter % 4)
        {
            case 0:
                AddToCurModelOutput(modelOutput * (1.0 / 6));
                _ets.Add(Keep(modelOutput));
                _curSample?.Dispose();
                _curSample = Keep(sample);
                break;
            case 1:
            case 2:
                AddToCurModelOutput(modelOutput * (1.0 / 3));
                break;
            default:
                modelOutput = _curModelOutput is null ? modelOutput * (1.0 / 6) : _curModelOutput + modelOutput * (1.0 / 6);
                _curModelOutput?.Dispose();
                _curModelOutput = null;
                break;
        }
        return PrevSample(_curSample ?? sample, t, prevT, modelOutput);
    }

    void AddToCurModelOutput(Tensor term)
    {
        var next = _curModelOutput is null ? term : _curModelOutput + term;
        _curModelOutput?.Dispose();
        _curModelOutput = Keep(next);
    }

    Tensor StepPlms(Tensor modelOutput, int timestep, Tensor sample, int n)
    {
        if (!SkipPrkSteps && _ets.Count < 3)
            throw new InvalidOperationException($"{ClassName}: the PLMS steps can only run after the Runge-Kutta warm-up steps");
        long ratio = NumTrainTimesteps / n;
        long t = timestep, prevT = timestep - ratio;
        if (_counter != 1)
        {
            while (_ets.Count > 3) { _ets[0].Dispose(); _ets.RemoveAt(0); }
            _ets.Add(Keep(modelOutput));
        }
        else
        {
            prevT = timestep;
            t = timestep + ratio;
        }

        Tensor eps;
        if (_ets.Count == 1 && _counter == 0)
        {
            eps = modelOutput;
            _curSample?.Dispose();
            _curSample = Keep(sample);
        }
        else if (_ets.Count == 1 && _counter == 1)
        {
            eps = (modelOutput + _ets[^1]) / 2;
            sample = _curSample!.alias();
            _curSample.Dispose();
            _curSample = null;
        }
        else if (_ets.Count == 2) eps = (_ets[^1] * 3 - _ets[^2]) / 2;
        else if (_ets.Count == 3) eps = (_ets[^1] * 23 - _ets[^2] * 16 + _ets[^3] * 5) / 12;
        else eps = (_ets[^1] * 55 - _ets[^2] * 59 + _ets[^3] * 37 - _ets[^4] * 9) * (1.0 / 24);
        return PrevSample(sample, t, prevT, eps);
    }

    Tensor PrevSample(Tensor sample, long t, long prevT, Tensor modelOutput)
    {
        float aT = Ac[t];
        float aPrev = prevT >= 0 ? Ac[prevT] : _finalAlphaCumprod;
        float bT = 1f - aT, bPrev = 1f - aPrev;
        if (PredictionType == "v_prediction") modelOutput = modelOutput * MathF.Sqrt(aT) + sample * MathF.Sqrt(bT);
        float sampleCoeff = MathF.Sqrt(aPrev / aT);
        float denom = aT * MathF.Sqrt(bPrev) + MathF.Sqrt(aT * bT * aPrev);
        return sample * sampleCoeff - modelOutput * (aPrev - aT) / denom;
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) => AddNoiseByAlphas(originalSamples, noise, timesteps);
}
