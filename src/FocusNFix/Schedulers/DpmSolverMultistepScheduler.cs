using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>
/// diffusers 0.27.2 DPMSolverMultistepScheduler: DPM-Solver(++) of order 1 to 3 (SD's "DPM++ 2M" is
/// dpmsolver++, order 2, midpoint), optionally with Karras or Lu sigmas and the SDE variants.
/// The model outputs it remembers between steps are kept in the graph, so a multi-step loop backprops.
/// </summary>
public sealed class DpmSolverMultistepScheduler : SigmaSchedulerBase
{
    readonly Tensor?[] _history;
    int _lowerOrderNums;

    public DpmSolverMultistepScheduler(JsonConfig config) : base(config)
    {
        SolverOrder = config.Int("solver_order", 2);
        if (SolverOrder is < 1 or > 3) throw Bad("solver_order", SolverOrder, "1, 2 or 3");
        PredictionType = Choice("prediction_type", "epsilon", "epsilon", "sample", "v_prediction");
        Thresholding = config.Bool("thresholding", false);
        DynamicThresholdingRatio = config.Double("dynamic_thresholding_ratio", 0.995);
        SampleMaxValue = config.Double("sample_max_value", 1.0);
        // diffusers maps the schedulers it borrows configs from: deis -> dpmsolver++, logrho/bh1/bh2 -> midpoint.
        var algorithm = Choice("algorithm_type", "dpmsolver++", "dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++", "deis");
        AlgorithmType = algorithm == "deis" ? "dpmsolver++" : algorithm;
        var solver = Choice("solver_type", "midpoint", "midpoint", "heun", "logrho", "bh1", "bh2");
        SolverType = solver == "heun" ? "heun" : "midpoint";
        LowerOrderFinal = config.Bool("lower_order_final", true);
        EulerAtFinal = config.Bool("euler_at_final", false);
        UseKarrasSigmas = config.Bool("use_karras_sigmas", false);
        UseLuLambdas = config.Bool("use_lu_lambdas", false);
        FinalSigmasType = Choice("final_sigmas_type", "zero", "zero", "sigma_min");
        LambdaMinClipped = config.Double("lambda_min_clipped", double.NegativeInfinity);
        VarianceType = config.String("variance_type", null);
        if (VarianceType is not (null or "learned" or "learned_range")) throw Bad("variance_type", $"'{VarianceType}'", "null, 'learned' or 'learned_range'");
        TimestepSpacing = Choice("timestep_spacing", "linspace", "linspace", "leading", "trailing");
        StepsOffset = config.Int("steps_offset", 0);
        if (config.Bool("rescale_betas_zero_snr", false)) PinLastAlphaCumprod();
        if (AlgorithmType is not ("dpmsolver++" or "sde-dpmsolver++") && FinalSigmasType == "zero")
            throw Bad("final_sigmas_type", "'zero'", $"'sigma_min' with algorithm_type '{AlgorithmType}'");
        if (AlgorithmType.StartsWith("sde-") && SolverOrder == 3)
            throw Bad("solver_order", 3, $"1 or 2 with algorithm_type '{AlgorithmType}' (diffusers has no third-order SDE update)");
        _history = new Tensor?[SolverOrder];

        var (train, _) = TrainSigmaTable();
        var ts = ScheduleMath.Linspace(0, NumTrainTimesteps - 1, NumTrainTimesteps).Reverse().Select(v => (float)v).ToArray();
        SetSchedule(train, tensor(ts));
    }

    public override string ClassName => "DPMSolverMultistepScheduler";
    public int SolverOrder { get; }
    public string PredictionType { get; }
    public bool Thresholding { get; }
    public double DynamicThresholdingRatio { get; }
    public double SampleMaxValue { get; }
    public string AlgorithmType { get; }
    public string SolverType { get; }
    public bool LowerOrderFinal { get; }
    public bool EulerAtFinal { get; }
    public bool UseKarrasSigmas { get; }
    public bool UseLuLambdas { get; }
    public string FinalSigmasType { get; }
    public double LambdaMinClipped { get; }
    public string? VarianceType { get; }
    public string TimestepSpacing { get; }
    public int StepsOffset { get; }

    bool DataPrediction => AlgorithmType is "dpmsolver++" or "sde-dpmsolver++";

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckSteps(numInferenceSteps, int.MaxValue);
        int n = numInferenceSteps;
        // Drop the tail where lambda(t) = log(alpha_t / sigma_t) falls below lambda_min_clipped (searchsorted, left side).
        var lambdas = Ac.Select(a => MathF.Log(MathF.Sqrt(a)) - MathF.Log(MathF.Sqrt(1f - a))).Reverse().ToArray();
        int clipped = lambdas.Count(l => l < LambdaMinClipped);
        int last = NumTrainTimesteps - clipped;

        double[] timesteps = TimestepSpacing switch
        {
            "linspace" => ScheduleMath.Linspace(0, last - 1, n + 1).Select(ScheduleMath.Round).Reverse().SkipLast(1).ToArray(),
            "leading" => Enumerable.Range(0, n + 1).Select(i => (double)((long)i * (last / (n + 1)))).Reverse().SkipLast(1).Select(v => v + StepsOffset).ToArray(),
            _ => ScheduleMath.Arange(last, 0, -(double)NumTrainTimesteps / n).Select(v => ScheduleMath.Round(v) - 1).ToArray(),
        };

        var (train, logTrain) = TrainSigmaTable();
        double[] sigmas;
        if (UseKarrasSigmas)
        {
            sigmas = ScheduleMath.KarrasSigmas(train[0], train[^1], n);
            timesteps = sigmas.Select(s => ScheduleMath.Round(ScheduleMath.SigmaToT(s, logTrain))).ToArray();
        }
        else if (UseLuLambdas)
        {
            double lambdaMin = logTrain[0], lambdaMax = logTrain[^1];
            sigmas = ScheduleMath.Linspace(0, 1, n).Select(r => Math.Exp(lambdaMax + r * (lambdaMin - lambdaMax))).ToArray();
            timesteps = sigmas.Select(s => ScheduleMath.Round(ScheduleMath.SigmaToT(s, logTrain))).ToArray();
        }
        else
        {
            var xp = Enumerable.Range(0, train.Length).Select(i => (double)i).ToArray();
            var fp = train.Select(v => (double)v).ToArray();
            sigmas = timesteps.Select(t => ScheduleMath.Interp(t, xp, fp)).ToArray();
        }
        float sigmaLast = FinalSigmasType == "sigma_min" ? MathF.Sqrt((1f - Ac[0]) / Ac[0]) : 0f;
        var sig32 = sigmas.Select(s => (float)s).Append(sigmaLast).ToArray();
        SetSchedule(sig32, tensor(timesteps.Select(t => (long)t).ToArray()));
        NumInferenceSteps = timesteps.Length;
        ResetHistory();
    }

    public override void Dispose()
    {
        ResetHistory();
        base.Dispose();
    }

    void ResetHistory()
    {
        for (int i = 0; i < _history.Length; i++) { _history[i]?.Dispose(); _history[i] = null; }
        _lowerOrderNums = 0;
    }

    /// <summary>A timestep not in the schedule maps to the last step, as in diffusers.</summary>
    protected override int IndexForTimestep(double t)
    {
        var matches = Enumerable.Range(0, TimestepValues.Length).Where(i => TimestepValues[i] == t).Take(2).ToArray();
        return matches.Length switch { 0 => TimestepValues.Length - 1, 1 => matches[0], _ => matches[1] };
    }

    static float Exp(float x) => ScheduleMath.TorchExp(x);

    static (float Alpha, float Sigma, float Lambda) AlphaSigma(float sigma)
    {
        float alpha = 1f / MathF.Sqrt(sigma * sigma + 1f);
        float s = sigma * alpha;
        return (alpha, s, MathF.Log(alpha) - MathF.Log(s));
    }

    /// <summary>The model output as the solver's variable: x0 for dpmsolver++, epsilon for dpmsolver.</summary>
    Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, int i)
    {
        var (alpha, sigma, _) = AlphaSigma(SigmaValues[i]);
        if (PredictionType == "epsilon" && VarianceType is "learned" or "learned_range") modelOutput = modelOutput.narrow(1, 0, 3);
        if (DataPrediction)
        {
            var x0 = PredictionType switch
            {
                "epsilon" => (sample - modelOutput * sigma) / alpha,
                "sample" => modelOutput.alias(),
                _ => sample * alpha - modelOutput * sigma,
            };
            return Thresholding ? ThresholdSample(x0, DynamicThresholdingRatio, SampleMaxValue) : x0;
        }
        var eps = PredictionType switch
        {
            "epsilon" => modelOutput.alias(),
            "sample" => (sample - modelOutput * alpha) / sigma,
            _ => modelOutput * alpha + sample * sigma,
        };
        if (!Thresholding) return eps;
        var x = ThresholdSample((sample - eps * sigma) / alpha, DynamicThresholdingRatio, SampleMaxValue);
        return (sample - x * alpha) / sigma;
    }

    public override SchedulerOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, Generator? generator = null, Tensor? noise = null)
    {
        int i = CurrentIndex(timestep);
        int count = TimestepValues.Length;
        bool lowerOrderFinal = i == count - 1 && (EulerAtFinal || (LowerOrderFinal && count < 15) || FinalSigmasType == "zero");
        bool lowerOrderSecond = i == count - 2 && LowerOrderFinal && count < 15;

        using var scope = NewDisposeScope();
        var converted = ConvertModelOutput(modelOutput, sample, i);
        _history[0]?.Dispose();
        for (int k = 0; k < SolverOrder - 1; k++) _history[k] = _history[k + 1];
        _history[^1] = Keep(converted);

        var x = sample.to_type(ScalarType.Float32);
        Tensor? z = null;
        if (AlgorithmType.StartsWith("sde-"))
            z = noise?.to(modelOutput.device).to_type(ScalarType.Float32) ?? ScheduleMath.Randn(modelOutput, generator, ScalarType.Float32);

        Tensor prev;
        if (SolverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal) prev = FirstOrder(converted, x, z, i);
        else if (SolverOrder == 2 || _lowerOrderNums < 2 || lowerOrderSecond) prev = SecondOrder(x, z, i);
        else prev = ThirdOrder(x, i);
        if (_lowerOrderNums < SolverOrder) _lowerOrderNums++;

        prev = prev.to_type(converted.dtype);
        StepIndex = i + 1;
        var x0 = DataPrediction ? converted.MoveToOuterDisposeScope() : null;
        return new SchedulerOutput(prev.MoveToOuterDisposeScope(), x0);
    }

    Tensor FirstOrder(Tensor m, Tensor x, Tensor? z, int i)
    {
        var (at, st, lt) = AlphaSigma(SigmaValues[i + 1]);
        var (as_, ss, ls) = AlphaSigma(SigmaValues[i]);
        float h = lt - ls;
        return AlgorithmType switch
        {
            "dpmsolver++" => x * (st / ss) - m * (at * (Exp(-h) - 1f)),
            "dpmsolver" => x * (at / as_) - m * (st * (Exp(h) - 1f)),
            "sde-dpmsolver++" => x * (st / ss * Exp(-h)) + m * (at * (1f - Exp(-2f * h))) + z! * (st * MathF.Sqrt(1f - Exp(-2f * h))),
            _ => x * (at / as_) - m * (2f * (st * (Exp(h) - 1f))) + z! * (st * MathF.Sqrt(Exp(2f * h) - 1f)),
        };
    }

    Tensor SecondOrder(Tensor x, Tensor? z, int i)
    {
        var (at, st, lt) = AlphaSigma(SigmaValues[i + 1]);
        var (as0, ss0, ls0) = AlphaSigma(SigmaValues[i]);
        var (_, _, ls1) = AlphaSigma(SigmaValues[i - 1]);
        Tensor m0 = _history[^1]!, m1 = _history[^2]!;
        float h = lt - ls0, h0 = ls0 - ls1, r0 = h0 / h;
        var d0 = m0;
        var d1 = (m0 - m1) * (1f / r0);
        bool mid = SolverType == "midpoint";
        switch (AlgorithmType)
        {
            case "dpmsolver++":
            {
                float c = at * (Exp(-h) - 1f);
                return mid ? x * (st / ss0) - d0 * c - d1 * (0.5f * c)
                           : x * (st / ss0) - d0 * c + d1 * (at * ((Exp(-h) - 1f) / h + 1f));
            }
            case "dpmsolver":
            {
                float c = st * (Exp(h) - 1f);
                return mid ? x * (at / as0) - d0 * c - d1 * (0.5f * c)
                           : x * (at / as0) - d0 * c - d1 * (st * ((Exp(h) - 1f) / h - 1f));
            }
            case "sde-dpmsolver++":
            {
                float c = at * (1f - Exp(-2f * h));
                var baseTerm = x * (st / ss0 * Exp(-h)) + d0 * c;
                var d1Term = mid ? d1 * (0.5f * c) : d1 * (at * ((1f - Exp(-2f * h)) / (-2f * h) + 1f));
                return baseTerm + d1Term + z! * (st * MathF.Sqrt(1f - Exp(-2f * h)));
            }
            default:
            {
                float c = st * (Exp(h) - 1f);
                var baseTerm = x * (at / as0) - d0 * (2f * c);
                var d1Term = mid ? d1 * c : d1 * (2f * (st * ((Exp(h) - 1f) / h - 1f)));
                return baseTerm - d1Term + z! * (st * MathF.Sqrt(Exp(2f * h) - 1f));
            }
        }
    }

    Tensor ThirdOrder(Tensor x, int i)
    {
        var (at, st, lt) = AlphaSigma(SigmaValues[i + 1]);
        var (as0, ss0, ls0) = AlphaSigma(SigmaValues[i]);
        var (_, _, ls1) = AlphaSigma(SigmaValues[i - 1]);
        var (_, _, ls2) = AlphaSigma(SigmaValues[i - 2]);
        Tensor m0 = _history[^1]!, m1 = _history[^2]!, m2 = _history[^3]!;
        float h = lt - ls0, h0 = ls0 - ls1, h1 = ls1 - ls2, r0 = h0 / h, r1 = h1 / h;
        var d10 = (m0 - m1) * (1f / r0);
        var d11 = (m1 - m2) * (1f / r1);
        var d1 = d10 + (d10 - d11) * (r0 / (r0 + r1));
        var d2 = (d10 - d11) * (1f / (r0 + r1));
        if (AlgorithmType == "dpmsolver++")
        {
            float e = Exp(-h) - 1f;
            return x * (st / ss0) - m0 * (at * e) + d1 * (at * (e / h + 1f)) - d2 * (at * ((e + h) / (h * h) - 0.5f));
        }
        float f = Exp(h) - 1f;
        return x * (at / as0) - m0 * (st * f) - d1 * (st * (f / h - 1f)) - d2 * (st * ((f - h) / (h * h) - 0.5f));
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var sigma = SigmasFor(timesteps, originalSamples);
        var alpha = 1.0 / (sigma.pow(2) + 1).sqrt();
        return (alpha * originalSamples + sigma * alpha * noise).MoveToOuterDisposeScope();
    }
}
