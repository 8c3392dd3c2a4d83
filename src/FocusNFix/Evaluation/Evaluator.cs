using FocusNFix.IO;
using FocusNFix.Lora;
using FocusNFix.Masks;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using static TorchSharp.torch;

namespace FocusNFix.Evaluation;

/// <summary>A per-image scorer: images [B,3,H,W] in [0,1] and prompts to one value per image.</summary>
public delegate double[] ImageScorer(Tensor images, IReadOnlyList<string> prompts);

/// <summary>What <see cref="Evaluator"/> compares and with which instruments.</summary>
public sealed class EvalSetup
{
    public required IReadOnlyList<string> Prompts { get; init; }
    public required IReadOnlyList<long> Seeds { get; init; }
    /// <summary>The fine-tuned methods: name and LoRA file (the base model is always evaluated, as "base").</summary>
    public IReadOnlyList<(string Method, string LoraPath)> Loras { get; init; } = Array.Empty<(string, string)>();
    /// <summary>
    /// Methods that change only how the base model samples (negative prompt, SLD, another guidance scale): the
    /// training-free baselines, compared with the same prompts, seeds and base images as the LoRAs.
    /// </summary>
    public IReadOnlyList<SamplingVariant> Variants { get; init; } = Array.Empty<SamplingVariant>();
    public int Steps { get; init; } = 20;
    public double GuidanceScale { get; init; } = 3.0;
    /// <summary>DDIM's eta (0: deterministic); the pipeline's scheduler is the one the caller set.</summary>
    public double Eta { get; init; }
    /// <summary>The scheduler's CLI name when the caller switched it (recorded in the images' metadata); null: the pipeline's own.</summary>
    public string? Scheduler { get; init; }
    /// <summary>The reward being fixed (reported as <see cref="TargetName"/>).</summary>
    public required IReward Target { get; init; }
    public string TargetName { get; init; } = "target_reward";
    /// <summary>Rewards and judges that were not optimised, by metric name.</summary>
    public IReadOnlyDictionary<string, ImageScorer> Others { get; init; } = new Dictionary<string, ImageScorer>();
    /// <summary>The problem-region heatmap of the base image, whose mask splits preservation into inside/outside (owned by the caller).</summary>
    public required IHeatmapSource Heatmap { get; init; }
    public MaskOptions Mask { get; init; } = new();
    /// <summary>
    /// Exact per-image figures from a world that knows the truth (the ShapesWorld oracle's <c>OracleFigures</c>),
    /// reported beside the rewards; null when there is none. Named figures, NaN where a figure does not apply.
    /// </summary>
    public Func<Tensor, string, IReadOnlyDictionary<string, double>>? Oracle { get; init; }
    /// <summary>
    /// The oracle's figures of a method's image against the base image of the same prompt and seed (what is left of
    /// the base image's defect, whether it was fixed or erased); used instead of <see cref="Oracle"/> for every method
    /// but the base model when given.
    /// </summary>
    public Func<Tensor, Tensor, string, IReadOnlyDictionary<string, double>>? OracleAgainstBase { get; init; }
    /// <summary>How many (prompt, seed) pairs get a row of pictures in the report.</summary>
    public int PictureRows { get; init; } = 16;
    public const int DefaultBatchSize = 32;
    public int BatchSize { get; init; } = DefaultBatchSize;
    /// <summary>Training logs (log.jsonl of a run) per method, for the curves.</summary>
    public IReadOnlyDictionary<string, string> TrainingLogs { get; init; } = new Dictionary<string, string>();
    public string Title { get; init; } = "Focus-N-Fix evaluation";
    /// <summary>The part of prompts x seeds to evaluate (<see cref="EvalShard.Whole"/>: all); a shard also writes shard.json.</summary>
    public EvalShard Shard { get; init; } = EvalShard.Whole;
    /// <summary>
    /// A folder that keeps the base model's images between evaluations that sample them the same way (a sweep
    /// evaluates every setting against the same base images, a quarter of its sampling otherwise); null: sample each time.
    /// </summary>
    public string? BaseImageCache { get; init; }
}

/// <summary>
/// Samples every (prompt, seed) with the base model and each LoRA from the same noise, and measures per image: the
/// target reward, the other rewards and judges, the oracle's figures, and preservation against the base image
/// (PSNR/SSIM over the whole image, inside and outside the base image's mask, share of changed pixels inside it).
/// Images go to <c>images/&lt;method&gt;/&lt;prompt-index&gt;_&lt;seed&gt;.png</c> under the output folder. Sampled images
/// wait on the CPU; each batch is scored and mapped on the pipeline's device, where the rewards and the heatmap source
/// must be.
/// </summary>
public static class Evaluator
{
    public const string BaseMethod = "base";

    public static EvaluationResult Run(TextToImagePipeline pipe, EvalSetup s, string outDir, Action<string, int, int>? progress = null)
    {
        var curves = CheckInputs(pipe, s, outDir);
        OutputFolder.Create(outDir, "output folder");
        var allJobs = s.Prompts.SelectMany((p, i) => s.Seeds.Select(seed => (Index: i, Prompt: p, Seed: seed))).ToList();
        var positions = s.Shard.Positions(allJobs.Count, s.BatchSize);
        var jobs = positions.Select(k => allJobs[k]).ToList();
        var result = new EvaluationResult
        {
            Title = s.Title, BaseModel = pipe.Folder.Path, BaseMethod = BaseMethod, TargetMetric = s.TargetName,
            Methods = new[] { BaseMethod }.Concat(s.Loras.Select(l => l.Method)).Concat(s.Variants.Select(v => v.Method)).ToList(),
            Prompts = s.Prompts.ToList(), Seeds = s.Seeds.ToList(),
        };
        var methods = new List<(string Method, string? Lora)> { (BaseMethod, null) };
        methods.AddRange(s.Loras.Select(l => (l.Method, (string?)l.LoraPath)));
        methods.AddRange(s.Variants.Select(v => (v.Method, (string?)null)));

        Tensor? baseImages = null, baseMasks = null, baseHeat = null;
        foreach (var (method, loraPath) in methods)
        {
            // Every tensor of a method (its images, their views, the LoRA) ends with it; the base images, heatmaps and
            // masks are detached and kept until the picture rows are written.
            using var methodScope = NewDisposeScope();
            LoraNetwork? lora = loraPath != null ? LoraNetwork.Load(pipe.Unet, loraPath) : null;
            try
            {
                var variant = s.Variants.FirstOrDefault(v => v.Method == method);
                var images = method == BaseMethod && s.BaseImageCache is { } cache
                    ? CachedBaseImages(pipe, jobs, s, cache, (d, t) => progress?.Invoke($"sampling {method}", d, t))
                    : SampleAll(pipe, jobs, s, variant, (d, t) => progress?.Invoke($"sampling {method}", d, t));
                if (method == BaseMethod)
                {
                    using (no_grad())
                    {
                        baseHeat = Batched(images, jobs, s.BatchSize, pipe.Device,
                            (im, js) => s.Heatmap.Compute(im, js.Select(j => new HeatmapKey(j.Prompt, j.Index, j.Seed)).ToList()));
                        baseMasks = HeatmapMask.FromHeatmap(baseHeat, s.Mask).DetachFromDisposeScope();
                        baseHeat.DetachFromDisposeScope();
                    }
                    baseImages = images.DetachFromDisposeScope();
                }
                var dir = Path.Combine(outDir, "images", method);
                for (int k = 0; k < jobs.Count; k++)
                    Images.SavePng(images[k], Path.Combine(dir, $"{jobs[k].Index}_{jobs[k].Seed}.png"), Info(pipe, s, jobs[k], images[k], method, loraPath, variant).PngText());
                var metrics = Measure(images, baseImages!, baseMasks!, jobs, s, method == BaseMethod, pipe.Device);
                for (int k = 0; k < jobs.Count; k++)
                    result.Images.Add(new ImageRecord
                    {
                        PromptIndex = jobs[k].Index, Seed = jobs[k].Seed, Prompt = jobs[k].Prompt, Method = method,
                        ImagePath = Path.Combine("images", method, $"{jobs[k].Index}_{jobs[k].Seed}.png"), Metrics = metrics[k],
                    });
                if (method != BaseMethod) images.Dispose();
            }
            // Disposing the LoRA removes its hooks and frees its weights (detaching alone left them to the garbage collector).
            finally { lora?.Dispose(); }
        }
        var offered = WritePictureRows(result, baseImages!, baseHeat!, baseMasks!, jobs, positions, s, outDir,
            (k, method) => Info(pipe, s, jobs[k], baseImages![k], method, methods.First(m => m.Method == method).Lora, s.Variants.FirstOrDefault(v => v.Method == method)));
        if (!s.Shard.IsWhole)
            new ShardInfo
            {
                Index = s.Shard.Index, Count = s.Shard.Count, BatchSize = s.BatchSize, PictureRows = s.PictureRows, TotalJobs = allJobs.Count,
                Positions = positions,
                Rows = offered.Select(o => new ShardRow { Position = positions[o.Job], MaskNonEmpty = o.NonEmpty, Spread = o.Spread, Row = o.Row }).ToList(),
            }.Save(outDir);
        result.Curves.AddRange(curves);
        result.ComputeSummaries();
        baseImages?.Dispose(); baseMasks?.Dispose(); baseHeat?.Dispose();
        return result;
    }

    /// <summary>
    /// Everything that can be refused before the first image is sampled (minutes of work, and images already written,
    /// when a bad LoRA or log surfaced only after the base model's turn): prompts, seeds, method names, every LoRA
    /// opened and checked against the UNet, every training log read, the output folder. Returns the logs' curves.
    /// </summary>
    /// <summary>
    /// The checks of the evaluation's files that need no model, for a caller to run before it loads one: each LoRA file
    /// on its own (structure, rank, alpha, values) and each training log. <see cref="Run"/> checks the LoRAs against the
    /// UNet again before it samples.
    /// </summary>
    public static void CheckFiles(IEnumerable<(string Method, string LoraPath)> loras, IReadOnlyDictionary<string, string> trainingLogs)
    {
        foreach (var (_, lora) in loras) LoraFile.Check(RunFolderLora.ResolveFile(lora));
        foreach (var (method, log) in trainingLogs) CurveFromLog(method, log);
    }

    static List<TrainingCurve> CheckInputs(TextToImagePipeline pipe, EvalSetup s, string outDir)
    {
        if (s.Prompts.Count == 0) throw new InvalidInputException("no prompts to evaluate: expected at least one");
        if (!s.Shard.IsWhole && s.Shard.Positions(s.Prompts.Count * s.Seeds.Count, s.BatchSize).Count == 0)
            throw new InvalidInputException($"--shard {s.Shard}: {s.Prompts.Count * s.Seeds.Count} images are {(s.Prompts.Count * s.Seeds.Count + s.BatchSize - 1) / s.BatchSize} batch(es) of {s.BatchSize}, none for this shard: expected at most that many shards");
        if (s.Seeds.Count == 0) throw new InvalidInputException("no seeds to evaluate: expected at least one per prompt");
        new SampleOptions { Steps = s.Steps, GuidanceScale = s.GuidanceScale }.Validate();
        var names = new HashSet<string>(StringComparer.Ordinal) { BaseMethod };
        foreach (var (method, lora) in s.Loras)
        {
            if (string.IsNullOrWhiteSpace(method) || !names.Add(method) || method.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || method is "heatmap" or "mask" or "diff")
                throw new InvalidInputException($"LoRA name '{method}' ({lora}): expected a unique name usable as a folder name, other than {BaseMethod}, heatmap, mask and diff");
            LoraNetwork.Check(pipe.Unet, lora);
        }
        foreach (var v in s.Variants)
        {
            if (string.IsNullOrWhiteSpace(v.Method) || !names.Add(v.Method) || v.Method.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || v.Method is "heatmap" or "mask" or "diff")
                throw new InvalidInputException($"method name '{v.Method}': expected a unique name usable as a folder name, other than {BaseMethod}, heatmap, mask and diff");
            v.Options(s).Validate(key => $"{v.Method}: {key}");
        }
        var curves = s.TrainingLogs.Select(kv => CurveFromLog(kv.Key, kv.Value)).ToList();
        OutputFolder.Check(outDir, "output folder");
        return curves;
    }

    /// <summary>What every picture of one (prompt, seed) and method carries in its PNG metadata.</summary>
    static GenerationInfo Info(TextToImagePipeline pipe, EvalSetup s, (int Index, string Prompt, long Seed) job, Tensor image, string method, string? lora, SamplingVariant? variant) =>
        GenerationInfo.Of(pipe, job.Prompt, job.Index, job.Seed, variant?.Options(s) ?? new SampleOptions { Steps = s.Steps, GuidanceScale = s.GuidanceScale, Eta = s.Eta },
            (int)image.shape[^2], (int)image.shape[^1], scheduler: s.Scheduler, lora: lora, method: method);

    /// <summary>
    /// The base images from <paramref name="folder"/> when an earlier evaluation sampled them the same way (model,
    /// device, dtype, sampler, batch size, and the same prompts and seeds in the same batches: the key), else sampled
    /// and kept there. A kept file holds the exact float values, so the figures are those of a fresh sampling.
    /// </summary>
    static Tensor CachedBaseImages(TextToImagePipeline pipe, List<(int Index, string Prompt, long Seed)> jobs, EvalSetup s, string folder, Action<int, int> progress)
    {
        var key = string.Join("\n", new[]
        {
            Path.GetFullPath(pipe.Folder.Path), pipe.Device.ToString(), pipe.DType.ToString(), pipe.Scheduler.GetType().Name, s.Scheduler ?? "default",
            FormattableString.Invariant($"steps={s.Steps} guidance={s.GuidanceScale:R} eta={s.Eta:R} batch={s.BatchSize}"),
        }
        // A model retrained in place is another model: its files' sizes and times are part of the key.
        .Concat(Directory.EnumerateFiles(pipe.Folder.Path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(f => FormattableString.Invariant($"{Path.GetRelativePath(pipe.Folder.Path, f)}\t{new FileInfo(f).Length}\t{File.GetLastWriteTimeUtc(f):O}")))
        .Concat(jobs.Select(j => FormattableString.Invariant($"{j.Index}\t{j.Seed}\t{j.Prompt}"))));
        var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)))[..32].ToLowerInvariant();
        var path = Path.Combine(folder, $"base-{hash}.safetensors");
        if (File.Exists(path))
        {
            var loaded = Safetensors.Load(path);
            if (loaded.TryGetValue("images", out var kept) && kept.shape.Length == 4 && kept.shape[0] == jobs.Count)
            {
                foreach (var other in loaded.Where(kv => kv.Key != "images")) other.Value.Dispose();
                progress(jobs.Count, jobs.Count);
                return kept;
            }
            foreach (var t in loaded.Values) t.Dispose();
            throw new InvalidInputException($"{path}: expected an \"images\" tensor of {jobs.Count} base images (a base-image cache file); delete it to sample them again");
        }
        var images = SampleAll(pipe, jobs, s, null, progress);
        OutputFolder.Create(folder, "base-image cache");
        Safetensors.Save(path, new Dictionary<string, Tensor> { ["images"] = images }, new Dictionary<string, string> { ["focusnfix_key"] = key });
        return images;
    }

    static Tensor SampleAll(TextToImagePipeline pipe, List<(int Index, string Prompt, long Seed)> jobs, EvalSetup s, SamplingVariant? variant, Action<int, int> progress)
    {
        var parts = new List<Tensor>();
        for (int start = 0; start < jobs.Count; start += s.BatchSize)
        {
            var chunk = jobs.Skip(start).Take(s.BatchSize).ToList();
            var options = variant?.Options(s) ?? new SampleOptions { Steps = s.Steps, GuidanceScale = s.GuidanceScale, Eta = s.Eta };
            options.Seeds = chunk.Select(j => j.Seed).ToList();
            using var r = pipe.Sample(chunk.Select(j => j.Prompt).ToList(), options);
            using var onCpu = r.Images.cpu();
            parts.Add(onCpu.clone());
            progress(Math.Min(start + s.BatchSize, jobs.Count), jobs.Count);
        }
        var all = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return all;
    }

    static Tensor Batched(Tensor images, List<(int Index, string Prompt, long Seed)> jobs, int batch, Device device,
        Func<Tensor, List<(int Index, string Prompt, long Seed)>, Tensor> f)
    {
        var parts = new List<Tensor>();
        for (int start = 0; start < jobs.Count; start += batch)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(batch, jobs.Count - start);
            parts.Add(f(images.narrow(0, start, n).to(device), jobs.GetRange(start, n)).detach().cpu().MoveToOuterDisposeScope());
        }
        var all = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return all;
    }

    static List<Dictionary<string, double>> Measure(Tensor images, Tensor baseImages, Tensor baseMasks,
        List<(int Index, string Prompt, long Seed)> jobs, EvalSetup s, bool isBase, Device device)
    {
        var rows = jobs.Select(_ => new Dictionary<string, double>()).ToList();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        for (int start = 0; start < jobs.Count; start += s.BatchSize)
        {
            int n = Math.Min(s.BatchSize, jobs.Count - start);
            var im = images.narrow(0, start, n).to(device);
            var prompts = jobs.GetRange(start, n).Select(j => j.Prompt).ToList();
            var target = s.Target.Score(im, prompts).to(ScalarType.Float64).cpu().data<double>().ToArray();
            for (int k = 0; k < n; k++) rows[start + k][s.TargetName] = target[k];
            foreach (var (name, scorer) in s.Others)
            {
                var v = scorer(im, prompts);
                for (int k = 0; k < n; k++) rows[start + k][name] = v[k];
            }
        }
        if (!isBase && s.OracleAgainstBase is { } against)
            for (int k = 0; k < jobs.Count; k++)
                foreach (var (name, value) in against(images[k], baseImages[k], jobs[k].Prompt))
                    rows[k][name] = value;
        else if (s.Oracle is { } oracle)
            for (int k = 0; k < jobs.Count; k++)
                foreach (var (name, value) in oracle(images[k], jobs[k].Prompt))
                    rows[k][name] = value;
        // Preservation in the sampling batches too: a shard then computes every figure on exactly the tensors an
        // unsharded run does (kernels may sum in another order for another batch size).
        for (int start = 0; !isBase && start < jobs.Count; start += s.BatchSize)
        {
            int n = Math.Min(s.BatchSize, jobs.Count - start);
            var (im, bi, bm) = (images.narrow(0, start, n), baseImages.narrow(0, start, n), baseMasks.narrow(0, start, n));
            var inv = 1 - bm;
            var psnr = ImageMetrics.Psnr(im, bi);
            var psnrIn = ImageMetrics.Psnr(im, bi, bm);
            var psnrOut = ImageMetrics.Psnr(im, bi, inv);
            var ssim = ImageMetrics.Ssim(im, bi);
            var ssimIn = ImageMetrics.Ssim(im, bi, bm);
            var ssimOut = ImageMetrics.Ssim(im, bi, inv);
            var share = ImageMetrics.ChangedShareInside(im, bi, bm);
            for (int k = 0; k < n; k++)
            {
                rows[start + k][MetricNames.Psnr] = psnr[k];
                rows[start + k][MetricNames.PsnrInside] = psnrIn[k];
                rows[start + k][MetricNames.PsnrOutside] = psnrOut[k];
                rows[start + k][MetricNames.Ssim] = ssim[k];
                rows[start + k][MetricNames.SsimInside] = ssimIn[k];
                rows[start + k][MetricNames.SsimOutside] = ssimOut[k];
                rows[start + k][MetricNames.ChangedShareInside] = share[k];
            }
        }
        return rows;
    }

    /// <summary>Writes the picture rows' files and adds the rows (<see cref="PictureRowChoice"/>); returns each with its job, whether its mask is non-empty and its spread.</summary>
    static List<(PictureRow Row, int Job, bool NonEmpty, double Spread)> WritePictureRows(EvaluationResult r, Tensor baseImages, Tensor heat, Tensor masks,
        List<(int Index, string Prompt, long Seed)> jobs, IReadOnlyList<int> positions, EvalSetup s, string outDir, Func<int, string, GenerationInfo> info)
    {
        // The rows where the methods differ most show what each did; ties go to a non-empty mask, the images the fix is about.
        bool[] nonEmpty;
        using (NewDisposeScope()) nonEmpty = Enumerable.Range(0, jobs.Count).Select(k => masks[k].sum().item<float>() > 0).ToArray();
        var byPair = r.Images.ToLookup(i => (i.PromptIndex, i.Seed));
        var spreads = jobs.Select(j => PictureRowChoice.Spread(byPair[(j.Index, j.Seed)], s.TargetName)).ToArray();
        var order = PictureRowChoice.Order(spreads, nonEmpty, positions, s.PictureRows);
        r.PictureRowRule = PictureRowChoice.Rule(s.TargetName, r.Methods.Count);
        var written = new List<(PictureRow Row, int Job, bool NonEmpty, double Spread)>();
        foreach (var k in order)
        {
            using var rowScope = NewDisposeScope();
            var (index, prompt, seed) = jobs[k];
            string name = $"{index}_{seed}.png";
            var row = new PictureRow { PromptIndex = index, Seed = seed, Prompt = prompt, BaseImage = Path.Combine("images", BaseMethod, name) };
            using var overlay = ReportWriter.HeatmapOverlay(baseImages[k], heat[k]);
            row.HeatmapOverlay = Path.Combine("images", "heatmap", name);
            Images.SavePng(overlay, Path.Combine(outDir, row.HeatmapOverlay), info(k, BaseMethod).As("overlay").PngText());
            row.Mask = Path.Combine("images", "mask", name);
            HeatmapMask.SavePng(masks[k], Path.Combine(outDir, row.Mask), info(k, BaseMethod).As("mask").PngText());
            foreach (var m in r.Methods.Where(m => m != BaseMethod))
            {
                var rel = Path.Combine("images", m, name);
                row.MethodImages[m] = rel;
                using var img = Images.LoadImage(Path.Combine(outDir, rel));
                using var diff = ReportWriter.DifferenceMap(img, baseImages[k]);
                row.DiffMaps[m] = Path.Combine("images", "diff", m, name);
                Images.SavePng(diff, Path.Combine(outDir, row.DiffMaps[m]), info(k, m).As("diff").PngText());
            }
            r.Rows.Add(row);
            written.Add((row, k, nonEmpty[k], spreads[k]));
        }
        return written;
    }

    /// <summary>Reward, constraint and loss against step from a run's log.jsonl.</summary>
    public static TrainingCurve CurveFromLog(string method, string logPath)
    {
        var curve = new TrainingCurve { Method = method };
        var entries = Training.JsonlLog.Read<Training.TrainStepLog>(logPath).ToList();
        // lambda is drawn only when a preservation budget moved it: a fixed lambda is one flat line and says nothing.
        bool lambdaMoves = entries.Select(e => e.Lambda).Distinct().Count() > 1;
        foreach (var e in entries)
        {
            var values = new Dictionary<string, double>
            {
                ["reward"] = e.Reward, ["constraint"] = e.Constraint, ["loss"] = e.Loss, ["change_outside_mask"] = e.ChangeOutside,
            };
            if (lambdaMoves) values["lambda"] = e.Lambda;
            if (double.IsFinite(e.PsnrOutside)) values["psnr_outside_training"] = e.PsnrOutside;
            curve.Add(e.Step, values);
        }
        var monitor = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(logPath))!, Training.FocusNFixTrainer.MonitorName);
        if (File.Exists(monitor)) curve.Monitor = ReadMonitor(monitor);
        return curve;
    }

    /// <summary>The monitor.json a run with train.monitor writes beside its log, as the report's <see cref="MonitorTrace"/>.</summary>
    public static MonitorTrace ReadMonitor(string path)
    {
        var file = Training.MonitorFile.Read(path);
        var trace = new MonitorTrace
        {
            BestUnflaggedStep = file.BestUnflaggedStep, StoppedAt = file.StoppedAt, LoraStep = file.LoraStep,
            FlagStep = file.FirstFlag?.Step, FlagReason = file.FirstFlag?.Reason,
        };
        foreach (var e in file.Evaluations)
        {
            var values = new Dictionary<string, double> { ["monitor_target_reward"] = e.TargetReward };
            foreach (var (name, v) in e.Guards) values["monitor_guard_" + name] = v;
            // The base images against themselves (+Infinity) are drawn at the trainer's PSNR ceiling.
            values["monitor_psnr_outside_mask"] = double.IsPositiveInfinity(e.PsnrOutside) ? Training.PreservationBudget.PsnrCeiling : e.PsnrOutside;
            trace.Evaluations.Add(new CurvePoint { Step = e.Step, Values = values });
        }
        return trace;
    }
}
