using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Schedulers;

/// <summary>
/// The training noise schedule (betas, alphas_cumprod) and the numpy arithmetic diffusers uses to
/// build inference schedules. Reproducing numpy exactly matters: timesteps are rounded half-to-even,
/// np.arange with a float step accumulates its own rounded delta, and np.interp has its own formula.
/// </summary>
public static class ScheduleMath
{
    /// <summary>
    /// Betas as diffusers builds them, float32: linear and scaled_linear via torch.linspace in float32
    /// (scaled_linear squares afterwards), squaredcos_cap_v2 in double then rounded.
    /// </summary>
    public static Tensor Betas(JsonConfig config, int numTrainTimesteps, bool allowSigmoid = false, bool allowRescale = true)
    {
        using var scope = NewDisposeScope();
        double betaStart = config.Double("beta_start", 0.0001), betaEnd = config.Double("beta_end", 0.02);
        var trained = config.DoubleList("trained_betas");
        Tensor betas;
        if (trained is not null)
        {
            if (trained.Length != numTrainTimesteps)
                throw new InvalidInputException($"{config.Source}: 'trained_betas' has {trained.Length} values but num_train_timesteps is {numTrainTimesteps}");
            betas = tensor(trained.Select(b => (float)b).ToArray());
        }
        else
        {
            var schedule = config.String("beta_schedule", "linear");
            betas = schedule switch
            {
                "linear" => tensor(TorchLinspace(betaStart, betaEnd, numTrainTimesteps)),
                "scaled_linear" => tensor(TorchLinspace(Math.Sqrt(betaStart), Math.Sqrt(betaEnd), numTrainTimesteps).Select(b => b * b).ToArray()),
                "squaredcos_cap_v2" => tensor(SquaredCosCapV2(numTrainTimesteps)),
                "sigmoid" when allowSigmoid => tensor(TorchLinspace(-6.0, 6.0, numTrainTimesteps)).sigmoid() * (betaEnd - betaStart) + betaStart,
                _ => throw new InvalidInputException($"{config.Source}: beta_schedule '{schedule}' is not supported; expected linear, scaled_linear, squaredcos_cap_v2{(allowSigmoid ? " or sigmoid" : "")}"),
            };
        }
        if (allowRescale && config.Bool("rescale_betas_zero_snr", false)) betas = RescaleZeroTerminalSnr(betas);
        return betas.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// torch.linspace(start, end, steps, dtype=float32) exactly as the reference torch 1.13 CPU build computed it
    /// (AVX2 kernel: blocks of 8 from a base value, fused multiply-adds, halves counted from either end).
    /// libtorch 2.x rounds differently in the last bit for a few hundred of 1000 betas; this keeps the schedule
    /// bit-identical to the golden one on every machine.
    /// </summary>
    public static float[] TorchLinspace(double start, double end, int steps)
    {
        var r = new float[steps];
        if (steps == 0) return r;
        float s = (float)start, e = (float)end;
        if (steps == 1) { r[0] = s; return r; }
        float step = (e - s) / (steps - 1);
        int half = steps / 2;
        float At(int i) => i < half ? MathF.FusedMultiplyAdd(step, i, s) : MathF.FusedMultiplyAdd(-step, steps - i - 1, e);
        int idx = 0;
        for (; idx + 8 <= steps; idx += 8)
        {
            float b = At(idx);
            for (int j = 0; j < 8; j++) r[idx + j] = MathF.FusedMultiplyAdd(j, step, b);
        }
        for (; idx < steps; idx++) r[idx] = At(idx);
        return r;
    }

    /// <summary>float32 cumprod of (1 - betas); torch's CPU kernel accumulates in double and rounds each entry.</summary>
    public static Tensor AlphasCumprod(Tensor betas)
    {
        using var scope = NewDisposeScope();
        var alphas = 1.0 - betas;
        return alphas.to_type(ScalarType.Float64).cumprod(0).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    static float[] SquaredCosCapV2(int n, double maxBeta = 0.999)
    {
        static double AlphaBar(double t) { var c = Math.Cos((t + 0.008) / 1.008 * Math.PI / 2); return c * c; }
        var betas = new float[n];
        for (int i = 0; i < n; i++)
        {
            double t1 = (double)i / n, t2 = (double)(i + 1) / n;
            betas[i] = (float)Math.Min(1 - AlphaBar(t2) / AlphaBar(t1), maxBeta);
        }
        return betas;
    }

    /// <summary>Zero terminal SNR rescaling (arXiv 2305.08891, Algorithm 1), float32 like diffusers.</summary>
    static Tensor RescaleZeroTerminalSnr(Tensor betas)
    {
        var sqrtAc = (1.0 - betas).cumprod(0).sqrt();
        var first = sqrtAc[0].clone();
        var last = sqrtAc[-1].clone();
        sqrtAc = (sqrtAc - last) * (first / (first - last));
        var ac = sqrtAc.pow(2);
        var n = ac.shape[0];
        var alphas = cat(new[] { ac.narrow(0, 0, 1), ac.narrow(0, 1, n - 1) / ac.narrow(0, 0, n - 1) });
        return 1.0 - alphas;
    }

    /// <summary>np.linspace(start, stop, num) in float64 (i*step + start, last value set to stop).</summary>
    public static double[] Linspace(double start, double stop, int num)
    {
        var y = new double[num];
        if (num == 0) return y;
        int div = num - 1;
        double delta = stop - start;
        double step = div > 0 ? delta / div : double.NaN;
        for (int i = 0; i < num; i++)
            y[i] = div > 0 ? (step == 0 ? i / (double)div * delta + start : i * step + start) : i * delta + start;
        if (num > 1) y[num - 1] = stop;
        return y;
    }

    /// <summary>np.arange(start, stop, step) for a float step: numpy fills start + i*((start+step) - start).</summary>
    public static double[] Arange(double start, double stop, double step)
    {
        int len = Math.Max(0, (int)Math.Ceiling((stop - start) / step));
        var y = new double[len];
        if (len > 0) y[0] = start;
        if (len > 1) y[1] = start + step;
        double delta = (start + step) - start;
        for (int i = 2; i < len; i++) y[i] = start + i * delta;
        return y;
    }

    /// <summary>
    /// exp of a float32 value as the reference torch 1.13 computed it for a tensor: SLEEF's expf_u10 (AVX2 with
    /// fused multiply-adds), which is not always correctly rounded. MathF.Exp, and libtorch 2.10 too, differ from it
    /// in the last bit for ~8% of inputs; DPM-Solver's step coefficients carry that into the samples.
    /// </summary>
    public static float TorchExp(float d)
    {
        if (float.IsNaN(d)) return d;
        if (d < -104f) return 0f;
        if (d > 100f) return float.PositiveInfinity;
        const float rLn2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
        const float l2U = 0.693145751953125f, l2L = 1.428606765330187045e-06f;
        float q = MathF.Round(d * rLn2, MidpointRounding.ToEven);
        float s = MathF.FusedMultiplyAdd(q, -l2U, d);
        s = MathF.FusedMultiplyAdd(q, -l2L, s);
        float u = 0.000198527617612853646278381f;
        u = MathF.FusedMultiplyAdd(u, s, 0.00139304355252534151077271f);
        u = MathF.FusedMultiplyAdd(u, s, 0.00833336077630519866943359f);
        u = MathF.FusedMultiplyAdd(u, s, 0.0416664853692054748535156f);
        u = MathF.FusedMultiplyAdd(u, s, 0.166666671633720397949219f);
        u = MathF.FusedMultiplyAdd(u, s, 0.5f);
        u = 1f + MathF.FusedMultiplyAdd(s * s, u, s);
        int qi = (int)q;
        return u * MathF.ScaleB(1f, qi >> 1) * MathF.ScaleB(1f, qi - (qi >> 1));
    }

    /// <summary>numpy's round (half to even).</summary>
    public static double Round(double x) => Math.Round(x, MidpointRounding.ToEven);

    /// <summary>np.interp(x, xp, fp) for increasing xp, in float64.</summary>
    public static double Interp(double x, double[] xp, double[] fp)
    {
        int n = xp.Length;
        if (double.IsNaN(x)) return x;
        if (x > xp[n - 1]) return fp[n - 1];
        if (x < xp[0]) return fp[0];
        if (x == xp[n - 1]) return fp[n - 1];
        int j = Array.BinarySearch(xp, x);
        if (j >= 0) return fp[j];
        j = ~j - 1; // xp[j] < x < xp[j + 1]
        double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
        double r = slope * (x - xp[j]) + fp[j];
        if (double.IsNaN(r))
        {
            r = slope * (x - xp[j + 1]) + fp[j + 1];
            if (double.IsNaN(r) && fp[j] == fp[j + 1]) r = fp[j];
        }
        return r;
    }

    /// <summary>Karras et al. (2022) sigmas, rho = 7, in float64 (diffusers' _convert_to_karras).</summary>
    public static double[] KarrasSigmas(double sigmaMin, double sigmaMax, int n)
    {
        const double rho = 7.0;
        var ramp = Linspace(0, 1, n);
        double minInv = Math.Pow(sigmaMin, 1 / rho), maxInv = Math.Pow(sigmaMax, 1 / rho);
        return ramp.Select(r => Math.Pow(maxInv + r * (minInv - maxInv), rho)).ToArray();
    }

    /// <summary>
    /// diffusers' _sigma_to_t: a fractional training timestep for a sigma, interpolating in log sigma.
    /// <paramref name="logSigmas"/> are float32 (numpy's log of the float32 sigma table).
    /// </summary>
    public static double SigmaToT(double sigma, float[] logSigmas)
    {
        double logSigma = Math.Log(Math.Max(sigma, 1e-10));
        int n = logSigmas.Length;
        // cumsum(dists >= 0).argmax(): the last index whose log sigma is <= log_sigma (0 when none).
        // numpy 1.x value-based casting makes dists float32, so the comparison is in float32.
        float logSigma32 = (float)logSigma;
        int count = 0, lowIdx = 0, best = -1;
        for (int i = 0; i < n; i++)
        {
            if (logSigma32 - logSigmas[i] >= 0f) count++;
            if (count > best) { best = count; lowIdx = i; }
        }
        lowIdx = Math.Min(lowIdx, n - 2);
        int highIdx = lowIdx + 1;
        float low = logSigmas[lowIdx], high = logSigmas[highIdx];
        double w = (low - logSigma) / (double)(low - high); // low - high is a float32 subtraction in numpy
        w = Math.Clamp(w, 0, 1);
        return (1 - w) * lowIdx + w * highIdx;
    }

    /// <summary>sqrt((1 - ac) / ac) in float32, the training sigma table.</summary>
    public static float[] TrainSigmas(float[] alphasCumprod) =>
        alphasCumprod.Select(a => MathF.Sqrt((1f - a) / a)).ToArray();

    /// <summary>A 0-d or 1-d timestep tensor as host doubles (index math only).</summary>
    public static double[] HostValues(Tensor t)
    {
        // Every step of the chain is a new handle: the scope frees them all, also for callers that have no scope.
        using var scope = NewDisposeScope();
        return t.detach().to_type(ScalarType.Float64).cpu().flatten().data<double>().ToArray();
    }

    public static double HostScalar(Tensor t)
    {
        if (t.numel() != 1) throw new ArgumentException($"expected a single timestep, got shape [{string.Join(",", t.shape)}]");
        return HostValues(t)[0];
    }

    /// <summary>Standard normal noise shaped like <paramref name="like"/>, drawn on the generator's device then moved (diffusers' randn_tensor).</summary>
    public static Tensor Randn(Tensor like, Generator? generator, ScalarType dtype)
    {
        var device = generator?.device ?? like.device;
        var noise = randn(like.shape, dtype: dtype, device: device, generator: generator);
        return device.type == like.device.type && device.index == like.device.index ? noise : noise.to(like.device);
    }
}
