using FocusNFix.Models;
using FocusNFix.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.WorldModels;

/// <summary>Options of <see cref="DiffusionPretrainer"/>.</summary>
public sealed class PretrainOptions
{
    public int Steps { get; set; } = 6000;
    public int BatchSize { get; set; } = 32;
    public double LearningRate { get; set; } = 4e-4;
    public int WarmupSteps { get; set; } = 200;
    public double WeightDecay { get; set; } = 0.01;
    /// <summary>EMA of the weights, which is what gets saved (small diffusion models sample far better from it).</summary>
    public double EmaDecay { get; set; } = 0.999;
    /// <summary>Share of prompts replaced by "" so the model also learns the unconditional score (classifier-free guidance).</summary>
    public double UncondProbability { get; set; } = 0.1;
    public double GradClipNorm { get; set; } = 1.0;
    public long Seed { get; set; }
    public int LogEvery { get; set; } = 50;
    /// <summary>What the UNet predicts, as the scheduler's prediction_type: epsilon (the noise) or sample (the clean image x0).</summary>
    public string PredictionType { get; set; } = "epsilon";
}

/// <summary>
/// Trains a text-conditioned UNet and its text encoder from scratch with the DDPM objective
/// E||target - f_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, c)||^2, target = eps (epsilon prediction) or x0
/// (sample prediction), timesteps uniform over the training schedule.
/// </summary>
public static class DiffusionPretrainer
{
    public sealed record Result(Dictionary<string, Tensor> UnetWeights, Dictionary<string, Tensor> TextWeights, double FinalLoss, TimeSpan WallTime);

    /// <param name="batches">step -> (images [B,3,H,W] in [0,1], prompts); must be deterministic in the step for reproducibility.</param>
    public static Result Train(UNet2DConditionModel unet, ClipTextModel textEncoder, ClipTokenizer tokenizer, Tensor alphasCumprod,
        Func<int, (Tensor Images, IReadOnlyList<string> Prompts)> batches, PretrainOptions o,
        Action<int, int, double>? progress = null, TensorBoardLog? log = null)
    {
        var started = DateTime.UtcNow;
        manual_seed(o.Seed);
        var rng = new Random((int)(o.Seed & 0x7fffffff));
        unet.train();
        textEncoder.train();
        var parameters = unet.parameters().Concat(textEncoder.parameters()).ToList();
        var optimizer = optim.AdamW(parameters, lr: o.LearningRate, weight_decay: o.WeightDecay);
        var ema = new EmaWeights(o.EmaDecay, unet, textEncoder);
        var idCache = new Dictionary<string, long[]>();
        var abar = alphasCumprod.to(float32);
        int numTrain = (int)abar.shape[0];
        double smoothed = double.NaN;
        using var gen = new Generator((ulong)o.Seed + 17);

        for (int step = 0; step < o.Steps; step++)
        {
            using var gcPause = TorchGcPause.Begin();
            using var scope = NewDisposeScope();
            var (images, prompts) = batches(step);
            long b = images.shape[0];
            var texts = prompts.Select(p => rng.NextDouble() < o.UncondProbability ? "" : p).ToList();
            var ids = stack(texts.Select(t => tensor(Ids(tokenizer, idCache, t))).ToList());
            var x0 = images * 2 - 1;
            var noise = randn(x0.shape, generator: gen);
            var t = randint(0, numTrain, new long[] { b }, generator: gen);
            var a = abar.index_select(0, t).view(b, 1, 1, 1);
            var xt = a.sqrt() * x0 + (1 - a).sqrt() * noise;
            var ehs = textEncoder.EncodePrompt(ids);
            var pred = unet.forward(xt, t, ehs);
            var loss = nn.functional.mse_loss(pred, o.PredictionType == "sample" ? x0 : noise);

            double lr = o.LearningRate * Math.Min(1.0, (step + 1.0) / Math.Max(1, o.WarmupSteps));
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            optimizer.zero_grad();
            loss.backward();
            double gradNorm = nn.utils.clip_grad_norm_(parameters, o.GradClipNorm);
            double lossValue = loss.item<float>();
            if (!double.IsFinite(lossValue) || !double.IsFinite(gradNorm))
                throw new InvalidOperationException($"pretraining diverged at step {step}: loss {lossValue}, gradient norm {gradNorm}");
            optimizer.step();
            ema.Update(step);
            smoothed = double.IsNaN(smoothed) ? lossValue : 0.98 * smoothed + 0.02 * lossValue;
            if (log != null && (step % o.LogEvery == 0 || step == o.Steps - 1))
            {
                log.Scalar("train/loss", lossValue, step);
                log.Scalar("train/loss_smoothed", smoothed, step);
                log.Scalar("train/grad_norm", gradNorm, step);
                log.Scalar("train/lr", lr, step);
            }
            progress?.Invoke(step + 1, o.Steps, smoothed);
        }
        unet.eval();
        textEncoder.eval();
        var (u, txt) = ema.Export(unet, textEncoder);
        return new Result(u, txt, smoothed, DateTime.UtcNow - started);
    }

    static long[] Ids(ClipTokenizer tok, Dictionary<string, long[]> cache, string text)
    {
        if (!cache.TryGetValue(text, out var ids)) cache[text] = ids = tok.Encode(text).Ids;
        return ids;
    }

    /// <summary>Exponential moving average of two modules' parameters, with the usual (1+n)/(10+n) warm-up.</summary>
    sealed class EmaWeights
    {
        readonly double _decay;
        readonly List<(Parameter Param, Tensor Shadow)> _pairs = new();

        public EmaWeights(double decay, params nn.Module[] modules)
        {
            _decay = decay;
            using var _ = no_grad();
            foreach (var m in modules)
                foreach (var (_, p) in m.named_parameters())
                    _pairs.Add((p, p.detach().clone().DetachFromDisposeScope()));
        }

        public void Update(int step)
        {
            double d = Math.Min(_decay, (1.0 + step) / (10.0 + step));
            using var _ = no_grad();
            foreach (var (p, s) in _pairs) s.mul_(d).add_(p, alpha: 1 - d);
        }

        /// <summary>State dicts with every parameter replaced by its average (buffers as they are).</summary>
        public (Dictionary<string, Tensor>, Dictionary<string, Tensor>) Export(nn.Module a, nn.Module b)
        {
            var shadow = _pairs.ToDictionary(x => x.Param.Handle, x => x.Shadow);
            Dictionary<string, Tensor> Dict(nn.Module m)
            {
                var byName = m.named_parameters().ToDictionary(x => x.name, x => x.parameter);
                var d = new Dictionary<string, Tensor>();
                foreach (var (name, t) in m.state_dict())
                    d[name] = (byName.TryGetValue(name, out var p) ? shadow[p.Handle] : t).detach().clone().DetachFromDisposeScope();
                return d;
            }
            return (Dict(a), Dict(b));
        }
    }
}
