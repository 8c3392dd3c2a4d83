using FocusNFix.Evaluation;
using FocusNFix.ShapesWorld;
using FocusNFix.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FocusNFix.WorldModels;

/// <summary>
/// Trains and evaluates <see cref="RegionRewardModel"/>s the way RAHF is trained on annotated generated images: each
/// batch holds freshly rendered scenes (drawn from the world's seeded sampler, restricted to one prompt split, train by
/// default, so test scenes stay held out), made to look like a generator's output by <see cref="WorldAugmentation"/>
/// (blur, noise, slight colour jitter) and labelled per pixel by the oracle's rule on the augmented image
/// (<see cref="WorldAugmentation.OracleMasks"/>), plus, when given, extra images with their oracle masks (base-model
/// samples), used as they are. Loss: per-pixel binary cross-entropy with a positive weight for the rare defect pixels.
/// </summary>
public static class RewardModelTraining
{
    const ulong TrainSalt = 0x4EA4_D000_0000_0001UL, EvalSalt = 0x4EA4_D000_0000_0002UL;

    /// <param name="Defect">"hazard", "glitch" or "rot".</param>
    /// <param name="Steps">Optimiser steps.</param>
    /// <param name="BatchSize">Images per step (rendered plus extra).</param>
    /// <param name="LearningRate">AdamW peak rate; a cosine schedule takes it to a tenth by the last step.</param>
    /// <param name="Seed">Seeds torch (initial weights, augmentation, extra-image draws) and the stream of scene seeds.</param>
    /// <param name="PosWeight">BCE weight of defect pixels (a stamp is about 2% of a 32 px image).</param>
    /// <param name="Channels">Layer widths; null: <see cref="RegionRewardConfig.For"/>.</param>
    /// <param name="Augment">Blur, noise and colour jitter on the rendered images (labels follow the augmented pixels).</param>
    /// <param name="ExtraFraction">Share of each batch drawn from the extra images, when there are any.</param>
    /// <param name="Split">Prompt split the rendered scenes are drawn from.</param>
    /// <param name="LogImagesEvery">Steps between image grids in the log (0: never).</param>
    public sealed record Options(
        string Defect, int Steps = 1200, int BatchSize = 32, double LearningRate = 3e-3, long Seed = 0,
        double PosWeight = 3, double WeightDecay = 1e-4, IReadOnlyList<int>? Channels = null, bool Augment = true,
        double ExtraFraction = 0.5, Split Split = Split.Train, int LogImagesEvery = 200)
    {
        internal void Validate()
        {
            if (Steps < 1) throw new InvalidInputException($"reward training: steps {Steps}: expected at least 1");
            if (BatchSize < 2) throw new InvalidInputException($"reward training: batch size {BatchSize}: expected at least 2");
            if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new InvalidInputException($"reward training: learning rate {LearningRate}: expected a positive number");
            if (!(PosWeight > 0) || double.IsInfinity(PosWeight)) throw new InvalidInputException($"reward training: pos weight {PosWeight}: expected a positive number");
            if (!(WeightDecay >= 0)) throw new InvalidInputException($"reward training: weight decay {WeightDecay}: expected >= 0");
            if (!(ExtraFraction >= 0 && ExtraFraction <= 1)) throw new InvalidInputException($"reward training: extra fraction {ExtraFraction}: expected 0..1");
        }
    }

    public static RegionRewardModel Train(ShapesWorldBenchmark world, Options o, Tensor? extraImages = null, Tensor? extraMasks = null,
        Action<int, int, double>? progress = null, TensorBoardLog? log = null)
    {
        o.Validate();
        using var gc = BlockingGc.Enter();
        var kind = RegionRewardConfig.ParseDefect(o.Defect, "reward training");
        int size = world.Spec.ImageSize;
        CheckExtras(extraImages, extraMasks, size);
        int nExtra = extraImages is null ? 0 : (int)Math.Round(o.BatchSize * o.ExtraFraction);
        int nRendered = o.BatchSize - nExtra;

        torch.manual_seed(o.Seed);
        using var gen = new Generator((ulong)o.Seed);
        var baseConfig = RegionRewardConfig.For(world.Spec, kind);
        var model = new RegionRewardModel(o.Channels is null ? baseConfig : baseConfig with { Channels = o.Channels.ToArray() });
        model.train();
        using var opt = new Training.AdamW(model.parameters(), o.LearningRate, o.WeightDecay);
        var seeds = new SplitMix64(o.Seed, TrainSalt);
        string tag = $"reward_{model.Name}";

        for (int step = 0; step < o.Steps; step++)
        {
            using var gcPause = TorchGcPause.Begin();
            using var scope = NewDisposeScope();
            double lr = o.LearningRate * (0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * step / o.Steps)));
            opt.LearningRate = lr;

            var parts = new List<(Tensor Images, Tensor Masks)>();
            if (nRendered > 0)
            {
                var (images, masks) = RenderScenes(world, seeds, nRendered, o.Split, kind);
                if (o.Augment)
                {
                    images = WorldAugmentation.Apply(images, gen);
                    parts.Add((images, WorldAugmentation.OracleMasks(world.Spec, kind, images)));
                }
                else parts.Add((images, masks));
            }
            if (nExtra > 0)
            {
                var idx = randint(extraImages!.shape[0], new long[] { nExtra }, generator: gen);
                parts.Add((extraImages.index_select(0, idx).to(float32), extraMasks!.index_select(0, idx).to(float32)));
            }
            var x = cat(parts.Select(p => p.Images).ToArray(), 0);
            var y = cat(parts.Select(p => p.Masks).ToArray(), 0);

            var loss = WeightedBce(model.forward(x), y, o.PosWeight);
            opt.ZeroGrad();
            loss.backward();
            if (!opt.Step())
                throw new TrainingFailedException($"reward model training diverged at step {step}: the update would make a weight non-finite (loss {loss.item<float>()})");

            double value = loss.item<float>();
            progress?.Invoke(step + 1, o.Steps, value);
            if (log != null)
            {
                log.Scalar($"{tag}/loss", value, step + 1);
                log.Scalar($"{tag}/lr", lr, step + 1);
                if (o.LogImagesEvery > 0 && (step + 1) % o.LogImagesEvery == 0)
                {
                    using var noGrad = no_grad();
                    int n = (int)Math.Min(8, x.shape[0]);
                    var shown = x.narrow(0, 0, n);
                    var heat = model.forward(shown).sigmoid().expand(-1, 3, -1, -1);
                    log.Images($"{tag}/images_heatmaps_masks", cat(new[] { shown, heat, y.narrow(0, 0, n).expand(-1, 3, -1, -1) }, 0), step + 1);
                }
            }
        }
        model.eval();
        return model;
    }

    /// <summary>Mean per-pixel BCE on logits; defect pixels weigh <paramref name="posWeight"/>.</summary>
    public static Tensor WeightedBce(Tensor logits, Tensor targets, double posWeight) =>
        -(targets * F.logsigmoid(logits) * posWeight + (1 - targets) * F.logsigmoid(-logits)).mean();

    static void CheckExtras(Tensor? images, Tensor? masks, int size)
    {
        if (images is null && masks is null) return;
        if (images is null || masks is null) throw new InvalidInputException("reward training: extra images and extra masks must be given together");
        if (images.dim() != 4 || images.shape[1] != 3 || images.shape[2] != size || images.shape[3] != size)
            throw new InvalidInputException($"reward training: extra images [{string.Join(",", images.shape)}]: expected [N,3,{size},{size}] in [0,1]");
        if (masks.dim() != 4 || masks.shape[0] != images.shape[0] || masks.shape[1] != 1 || masks.shape[2] != size || masks.shape[3] != size)
            throw new InvalidInputException($"reward training: extra masks [{string.Join(",", masks.shape)}]: expected [{images.shape[0]},1,{size},{size}] of 0 and 1");
        if (images.shape[0] == 0) throw new InvalidInputException("reward training: no extra images (give null instead)");
    }

    /// <summary>Renders <paramref name="count"/> scenes of a split with seeds drawn from <paramref name="seeds"/>.</summary>
    internal static (Tensor Images, Tensor Hazard, Tensor Glitch) RenderScenes(ShapesWorldBenchmark world, SplitMix64 seeds, int count, Split? split)
    {
        var scenes = new RenderedScene[count];
        for (int i = 0; i < count; i++) scenes[i] = world.Generate((long)(seeds.NextUInt64() >> 1), split);
        return WorldImage.ToBatch(scenes);
    }

    /// <summary>Like the other overload, with the masks of one defect kind.</summary>
    internal static (Tensor Images, Tensor Masks) RenderScenes(ShapesWorldBenchmark world, SplitMix64 seeds, int count, Split? split, DefectKind kind)
    {
        var scenes = new RenderedScene[count];
        for (int i = 0; i < count; i++) scenes[i] = world.Generate((long)(seeds.NextUInt64() >> 1), split);
        var (images, hazard, glitch) = WorldImage.ToBatch(scenes);
        hazard.Dispose(); glitch.Dispose();
        return (images, WorldImage.Masks(scenes, kind));
    }

    /// <summary>
    /// Held-out evaluation data: <paramref name="count"/> scenes of a split (test by default) from an evaluation seed
    /// stream disjoint from training's; optionally augmented like training data. Returns the images and, per defect
    /// kind, the oracle's masks on the returned images.
    /// </summary>
    public static (Tensor Images, Tensor HazardMasks, Tensor GlitchMasks) HeldOutScenes(ShapesWorldBenchmark world, int count, Split split = Split.Test, bool augment = false, long seed = 0)
    {
        var (images, hazard, glitch) = RenderScenes(world, new SplitMix64(seed, EvalSalt), count, split);
        if (!augment) return (images, hazard, glitch);
        using var gen = new Generator((ulong)seed + 1);
        var aug = WorldAugmentation.Apply(images, gen);
        images.Dispose(); hazard.Dispose(); glitch.Dispose();
        return (aug, WorldAugmentation.OracleMasks(world.Spec, DefectKind.Hazard, aug), WorldAugmentation.OracleMasks(world.Spec, DefectKind.Glitch, aug));
    }

    /// <summary><see cref="HeldOutScenes(ShapesWorldBenchmark, int, Split, bool, long)"/> with the oracle's masks of one defect kind.</summary>
    public static (Tensor Images, Tensor Masks) HeldOutScenes(ShapesWorldBenchmark world, int count, DefectKind kind, Split split = Split.Test, bool augment = false, long seed = 0)
    {
        var (images, masks) = RenderScenes(world, new SplitMix64(seed, EvalSalt), count, split, kind);
        if (!augment) return (images, masks);
        using var gen = new Generator((ulong)seed + 1);
        var aug = WorldAugmentation.Apply(images, gen);
        images.Dispose(); masks.Dispose();
        return (aug, WorldAugmentation.OracleMasks(world.Spec, kind, aug));
    }

    /// <summary>
    /// Image-level ROC AUC of <see cref="RegionRewardModel.DefectScore"/> against the oracle's presence, and the mean IoU of
    /// the heatmap thresholded at 0.5 with the oracle mask over the images where the defect is present. Presence is
    /// <paramref name="present"/> when given, otherwise a mask of at least <paramref name="minPixels"/> pixels (the
    /// oracle's rule also asks for both colours; pass <see cref="WorldAugmentation.OraclePresent"/> for the exact rule).
    /// </summary>
    public static (double Auc, double MeanIoU, int Positives, int Count) Evaluate(RegionRewardModel m, Tensor images, Tensor oracleMasks,
        Tensor? present = null, int minPixels = 4, int batchSize = 256)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new InvalidInputException($"reward evaluation: images [{string.Join(",", images.shape)}]: expected [N,3,H,W]");
        using var gc = BlockingGc.Enter();
        using var scope = NewDisposeScope();
        int n = (int)images.shape[0];
        var heat = new List<Tensor>();
        var scores = new List<Tensor>();
        bool wasTraining = m.training;
        m.eval();
        using (no_grad())
            for (int start = 0; start < n; start += batchSize)
            {
                var x = images.narrow(0, start, Math.Min(batchSize, n - start));
                heat.Add(m.Heatmap(x).to(float32).cpu());
                scores.Add(m.DefectScore(x).to(float64).cpu());
            }
        if (wasTraining) m.train();
        return Metrics(cat(heat.ToArray(), 0), cat(scores.ToArray(), 0), oracleMasks, present, minPixels);
    }

    /// <summary>
    /// The metrics of <see cref="Evaluate(RegionRewardModel, Tensor, Tensor, Tensor?, int, int)"/> from heatmaps [N,1,H,W], image-level scores
    /// [N] and oracle masks [N,1,H,W]: ROC AUC of the scores against presence, and the mean over present images of the IoU
    /// between heatmap &gt; 0.5 and the mask.
    /// </summary>
    public static (double Auc, double MeanIoU, int Positives, int Count) Metrics(Tensor heatmaps, Tensor scores, Tensor oracleMasks,
        Tensor? present = null, int minPixels = 4)
    {
        long n = heatmaps.shape[0];
        if (heatmaps.dim() != 4 || heatmaps.shape[1] != 1 || !oracleMasks.shape.SequenceEqual(heatmaps.shape) || scores.numel() != n
            || (present is not null && present.numel() != n))
            throw new InvalidInputException($"reward evaluation: heatmaps [{string.Join(",", heatmaps.shape)}], scores [{string.Join(",", scores.shape)}], " +
                $"masks [{string.Join(",", oracleMasks.shape)}]: expected [N,1,H,W], [N] and [N,1,H,W] for the same N, H, W");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var dims = new long[] { 1, 2, 3 };
        var truth = ScalarOps.Gt(oracleMasks.detach().to(float32).cpu(), 0.5);
        var isPresent = present is null ? ScalarOps.Ge(truth.sum(dims), minPixels) : present.detach().cpu().to(ScalarType.Bool).flatten();
        var heat = ScalarOps.Gt(heatmaps.detach().to(float32).cpu(), 0.5);
        var inter = (heat & truth).sum(dims).to(float64);
        var union = (heat | truth).sum(dims).to(float64);
        var iou = (inter / ScalarOps.ClampMin(union, 1)).data<double>().ToArray();
        var p = isPresent.data<bool>().ToArray();
        var s = scores.detach().to(float64).cpu().flatten().data<double>().ToArray();
        int positives = p.Count(b => b);
        double iouSum = 0;
        for (int i = 0; i < n; i++) if (p[i]) iouSum += iou[i];
        return (Auc.RocAuc(s, p), positives == 0 ? double.NaN : iouSum / positives, positives, (int)n);
    }

    /// <summary><see cref="Evaluate(RegionRewardModel, Tensor, Tensor, Tensor?, int, int)"/> on held-out rendered scenes, with the oracle's exact presence rule.</summary>
    public static (double Auc, double MeanIoU, int Positives, int Count) EvaluateRendered(RegionRewardModel m, ShapesWorldBenchmark world, int count,
        Split split = Split.Test, bool augment = false, long seed = 0)
    {
        using var gc = BlockingGc.Enter();
        using var scope = NewDisposeScope();
        var (images, masks) = HeldOutScenes(world, count, m.Config.Defect, split, augment, seed);
        return Evaluate(m, images, masks, WorldAugmentation.OraclePresent(world.Spec, m.Config.Defect, images));
    }
}

/// <summary>
/// Makes rendered images look like a generator's samples, so detectors and the judge trained on them transfer: per
/// image, a Gaussian blur (probability 0.7, sigma uniform in [0.3, 0.9] px), a colour jitter x·(1+g)+s per channel with
/// |g|, |s| ≤ 0.015, and Gaussian noise with a standard deviation uniform in [0, 0.02], then a clamp to [0,1]. The
/// jitter moves a colour by at most 0.03·255·√3 ≈ 13 RGB units and the noise rarely by more than 5 per channel, while
/// every blend of palette colours lies at least 100 units from every reserved colour (the oracle's threshold is 80), so
/// no palette colour is pushed into a defect colour's neighbourhood.
/// </summary>
public static class WorldAugmentation
{
    public const double BlurProbability = 0.7, SigmaMin = 0.3, SigmaMax = 0.9, JitterMax = 0.015, NoiseStdMax = 0.02;
    const int Radius = 2;

    /// <summary>Augmented copies of images [B,3,H,W] in [0,1] (no gradient).</summary>
    public static Tensor Apply(Tensor images, Generator? gen)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = images.detach().to(float32);
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var dev = x.device;

        var blur = ScalarOps.Lt(rand(new long[] { b }, generator: gen), BlurProbability).to(float32);
        var sigma = rand(new long[] { b }, generator: gen) * (SigmaMax - SigmaMin) + SigmaMin;
        // A tiny sigma makes the kernel a delta, so unblurred images go through the same grouped convolution.
        sigma = sigma * blur + (1 - blur) * 0.05;
        var t = tensor(Enumerable.Range(-Radius, 2 * Radius + 1).Select(i => (float)i).ToArray());
        var t2 = (t * t).unsqueeze(0);
        var s2 = (sigma * sigma).unsqueeze(1);
        var g1 = (-t2 / (2 * s2)).exp();
        g1 = g1 / g1.sum(1, keepdim: true);
        var kernel = (g1.unsqueeze(2) * g1.unsqueeze(1)).unsqueeze(1);              // [B,1,k,k]
        kernel = kernel.repeat_interleave(c, dim: 0).to(dev);                        // [B*C,1,k,k]
        var padded = F.pad(x.reshape(1, b * c, h, w), new long[] { Radius, Radius, Radius, Radius }, PaddingModes.Replicate);
        x = F.conv2d(padded, kernel, groups: b * c).reshape(b, c, h, w);

        var gain = (rand(new long[] { b, c, 1, 1 }, generator: gen) * 2 - 1) * JitterMax;
        var shift = (rand(new long[] { b, c, 1, 1 }, generator: gen) * 2 - 1) * JitterMax;
        x = x * (1 + gain.to(dev)) + shift.to(dev);
        var std = rand(new long[] { b, 1, 1, 1 }, generator: gen) * NoiseStdMax;
        x = x + randn(new long[] { b, c, h, w }, generator: gen).to(dev) * std.to(dev);
        return ScalarOps.Clamp01(x).to(images.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The oracle's defect mask (<see cref="Oracle.Defect"/>) of each image, as a tensor [B,1,H,W] of 0 and 1 (float32,
    /// on the images' device): a pixel, rounded to bytes as the oracle does, within the reserved distance of either of the
    /// kind's colours.
    /// </summary>
    public static Tensor OracleMasks(WorldSpec spec, DefectKind kind, Tensor images)
    {
        using var scope = NewDisposeScope();
        var near = Near(spec, kind, images);
        return near.Aggregate((a, b) => a | b).to(float32).MoveToOuterDisposeScope();
    }

    /// <summary>The oracle's presence verdict per image [B] (bool): enough mask pixels and at least one near each colour.</summary>
    public static Tensor OraclePresent(WorldSpec spec, DefectKind kind, Tensor images)
    {
        using var scope = NewDisposeScope();
        var near = Near(spec, kind, images);
        var dims = new long[] { 1, 2, 3 };
        var any = near.Aggregate((a, b) => a | b);
        var present = ScalarOps.Ge(any.sum(dims), spec.Oracle.MinDefectPixels);
        foreach (var n in near) present = present & n.flatten(1).any(1);
        return present.MoveToOuterDisposeScope();
    }

    /// <summary>Per colour of the kind, the pixels within the reserved distance of it, [B,1,H,W] bool.</summary>
    static Tensor[] Near(WorldSpec spec, DefectKind kind, Tensor images)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var bytes = (ScalarOps.Clamp01(images.detach().to(float32).nan_to_num(0)) * 255).round();
        double limit2 = spec.Oracle.ReservedDistance * spec.Oracle.ReservedDistance;
        Tensor NearTo(Rgb c)
        {
            var col = tensor(new float[] { c.R, c.G, c.B }, new long[] { 1, 3, 1, 1 }).to(bytes.device);
            var d = bytes - col;
            return ScalarOps.Le((d * d).sum(1, keepdim: true), limit2);
        }
        return spec.Colours(kind).Select(c => NearTo(c.Rgb).MoveToOuterDisposeScope()).ToArray();
    }
}

/// <summary>
/// Comparisons and clamps with explicit, scoped Scalars. TorchSharp's Tensor methods read a Scalar's native handle and
/// do not keep the Scalar alive during the native call, so an implicitly converted temporary (<c>t &gt; 0.5</c>,
/// <c>t.clamp(0, 1)</c>) can be finalized while libtorch still reads it, which corrupted the native heap in training runs
/// ("Unknown scalar type"); a <c>using</c> local lives until the call has returned. Arithmetic operators with a .NET number
/// (<c>t * 2</c>) already scope their Scalar and are safe.
/// </summary>
internal static class ScalarOps
{
    public static Tensor Gt(Tensor t, double v) { using var s = v.ToScalar(); return t.gt(s); }
    public static Tensor Ge(Tensor t, double v) { using var s = v.ToScalar(); return t.ge(s); }
    public static Tensor Lt(Tensor t, double v) { using var s = v.ToScalar(); return t.lt(s); }
    public static Tensor Le(Tensor t, double v) { using var s = v.ToScalar(); return t.le(s); }
    public static Tensor ClampMin(Tensor t, double v) { using var s = v.ToScalar(); return t.clamp_min(s); }
    public static Tensor Clamp01(Tensor t) { using var lo = 0.0.ToScalar(); using var hi = 1.0.ToScalar(); return t.clamp(lo, hi); }
}

/// <summary>
/// Turns off background (concurrent) garbage collection while a training or evaluation loop runs, restoring the previous
/// mode after. TorchSharp 0.107 passes implicitly converted Scalars to native calls without keeping them alive
/// (Tensor.add(Scalar) calls add(scalar, 1); square() calls pow(2)); a background GC can finalize such a temporary while
/// libtorch still reads it, which corrupted the native heap within minutes ("Unknown scalar type", reproduced reliably
/// with DOTNET_GCgen0size=0x20000; gone with GCLatencyMode.Batch or DOTNET_gcConcurrent=0).
/// </summary>
public readonly struct BlockingGc : IDisposable
{
    readonly System.Runtime.GCLatencyMode _previous;

    BlockingGc(System.Runtime.GCLatencyMode previous) { _previous = previous; }

    public static BlockingGc Enter()
    {
        var previous = System.Runtime.GCSettings.LatencyMode;
        if (previous != System.Runtime.GCLatencyMode.Batch) System.Runtime.GCSettings.LatencyMode = System.Runtime.GCLatencyMode.Batch;
        return new BlockingGc(previous);
    }

    public void Dispose()
    {
        if (System.Runtime.GCSettings.LatencyMode != _previous) System.Runtime.GCSettings.LatencyMode = _previous;
    }
}
