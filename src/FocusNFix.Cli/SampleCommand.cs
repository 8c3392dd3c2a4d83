using System.CommandLine;
using FocusNFix.IO;
using FocusNFix.Pipelines;
using FocusNFix.Schedulers;

namespace FocusNFix.Cli;

/// <summary><c>fnf sample</c>: text-to-image from a diffusers pipeline folder.</summary>
public static class SampleCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Pipeline folder in diffusers format (model_index.json, unet/, ...); required unless --from-png" };
        var prompt = new Option<string[]>("--prompt") { Description = "Prompt; repeat the option for several prompts (required unless --from-png)", AllowMultipleArgumentsPerToken = false };
        var negative = new Option<string?>("--negative-prompt") { Description = "Negative prompt for classifier-free guidance (default: empty)" };
        var seed = new Option<long>("--seed") { Description = "Seed of the first image; image k of a prompt uses seed + k", DefaultValueFactory = _ => 0 };
        var steps = CommonOptions.SamplingSteps();
        var guidance = CommonOptions.Guidance();
        var scheduler = new Option<string?>("--scheduler") { Description = $"Scheduler: {string.Join("|", SchedulerFactory.Names)} (default: the pipeline's own)" };
        var eta = new Option<double>("--eta") { Description = "DDIM eta (0 = deterministic)", DefaultValueFactory = _ => 0.0 };
        var batch = new Option<int>("--batch") { Description = "Images per prompt", DefaultValueFactory = _ => 1 };
        var height = new Option<int?>("--height") { Description = "Image height in pixels (default: the model's size)" };
        var width = new Option<int?>("--width") { Description = "Image width in pixels (default: the model's size)" };
        var clipSkip = new Option<int>("--clip-skip") { Description = "Skip the last N text-encoder layers (diffusers' clip_skip)", DefaultValueFactory = _ => 0 };
        var lora = new Option<string?>("--lora") { Description = "LoRA file for the UNet (.safetensors; PEFT, diffusers, attention-processor or kohya keys), or a training run folder" };
        var loraScale = new Option<double?>("--lora-scale") { Description = "Strength of the LoRA (diffusers' cross_attention_kwargs scale; default 1, 0 = off)" };
        var fromPng = new Option<string?>("--from-png") { Description = "Re-create an image fnf wrote from the generation settings in its PNG metadata (only --model, --device, --out, --threads may be added)" };
        var output = new Option<string>("--out") { Description = "Output folder; images are <prompt-index>_<seed>.png", DefaultValueFactory = _ => "out" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var threads = CommonOptions.Threads();
        var sld = new SldCliOptions();
        var cmd = new Command("sample", "Generate images from prompts with a diffusers-format pipeline")
        {
            model, prompt, negative, seed, steps, guidance, scheduler, eta, batch, height, width, clipSkip, lora, loraScale, output, device, dtype, threads,
        };
        cmd.Options.Add(fromPng);
        sld.AddTo(cmd);
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            Settings settings;
            if (pr.GetValue(fromPng) is { } png)
            {
                var taken = new Option[] { prompt, negative, seed, steps, guidance, scheduler, eta, batch, height, width, clipSkip, lora, loraScale, dtype }
                    .Concat(sld.All).Where(o => pr.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
                if (taken.Count > 0) throw new InvalidInputException($"--from-png {png} takes the generation settings from the file; drop {string.Join(", ", taken)} (only --model, --device, --out and --threads may be given)");
                var info = GenerationInfo.FromPng(png);
                var modelDir = pr.GetValue(model) ?? info.Model;
                if (!Directory.Exists(modelDir))
                    throw new InvalidInputException($"{png}: the model folder '{modelDir}' recorded in the metadata does not exist; pass --model DIR");
                settings = new Settings(modelDir, pr.GetResult(device) is { Implicit: false } ? pr.GetValue(device)! : info.Device, info.Dtype, info.Scheduler,
                    info.Lora, info.LoraScale, info.Steps, info.GuidanceScale, info.NegativePrompt, info.Eta, info.Height, info.Width, info.ClipSkip,
                    new() { (info.PromptIndex, info.Prompt, info.Seed) }, _ => info.Sld);
            }
            else
            {
                var modelDir = pr.GetValue(model) ?? throw new InvalidInputException("--model DIR is required (or --from-png FILE)");
                var prompts = pr.GetValue(prompt) is { Length: > 0 } ps ? ps : throw new InvalidInputException("--prompt TEXT is required (or --from-png FILE)");
                int perPrompt = pr.GetValue(batch);
                if (perPrompt < 1) throw new InvalidInputException($"--batch {perPrompt}: expected at least 1");
                if (pr.GetValue(loraScale) is not null && pr.GetValue(lora) is null) throw new InvalidInputException("--lora-scale was given without --lora FILE");
                settings = new Settings(modelDir, pr.GetValue(device)!, pr.GetValue(dtype)!, pr.GetValue(scheduler), pr.GetValue(lora), pr.GetValue(loraScale) ?? 1.0,
                    pr.GetValue(steps), pr.GetValue(guidance), pr.GetValue(negative), pr.GetValue(eta), pr.GetValue(height), pr.GetValue(width), pr.GetValue(clipSkip),
                    prompts.SelectMany((p, i) => Enumerable.Range(0, perPrompt).Select(k => (i, p, pr.GetValue(seed) + k))).ToList(), g => sld.Parse(pr, g));
            }
            var outDir = pr.GetValue(output)!;
            if (pr.GetValue(fromPng) is { } source)
            {
                var target = Path.Combine(outDir, $"{settings.Jobs[0].Index}_{settings.Jobs[0].Seed}.png");
                if (Path.GetFullPath(target) == Path.GetFullPath(source))
                    throw new InvalidInputException($"--from-png {source}: the re-created image would overwrite it; pass --out another folder");
                CheckBeforeLoading(settings, outDir, key => $"{source}: '{GenerationInfo.JsonKeyword}' metadata '{MetadataKeys.GetValueOrDefault(key, key)}'");
            }
            else CheckBeforeLoading(settings, outDir, key => Flags.GetValueOrDefault(key, key));
            foreach (var f in Run(settings, outDir)) Console.WriteLine(f);
            return 0;
        }));
        return cmd;
    }

    sealed record Settings(string Model, string Device, string Dtype, string? Scheduler, string? Lora, double LoraScale, int? Steps, double? Guidance,
        string? Negative, double Eta, int? Height, int? Width, int ClipSkip, List<(int Index, string Prompt, long Seed)> Jobs,
        Func<double, SldOptions?> Safe);

    static readonly Dictionary<string, string> Flags = new()
    {
        ["num_inference_steps"] = "--steps", ["guidance_scale"] = "--guidance", ["eta"] = "--eta", ["height"] = "--height", ["width"] = "--width",
        ["clip_skip"] = "--clip-skip", ["lora_scale"] = "--lora-scale",
    };

    // SampleOptions names settings as diffusers does; the PNG metadata says "steps".
    static readonly Dictionary<string, string> MetadataKeys = new() { ["num_inference_steps"] = "steps" };

    /// <summary>
    /// Every value that can be refused without the model, refused before it loads (seconds for a large pipeline):
    /// device, dtype, scheduler name, the sampling settings, the LoRA file and scale, and the output folder.
    /// </summary>
    static void CheckBeforeLoading(Settings st, string outDir, Func<string, string> label)
    {
        CommonOptions.ParseDevice(st.Device);
        CommonOptions.ParseDType(st.Dtype);
        if (st.Scheduler is { } name) SchedulerFactory.CheckName(name);
        // Unset steps and guidance come from the model; placeholders that pass stand in for them here.
        new SampleOptions
        {
            Steps = st.Steps ?? 1, GuidanceScale = st.Guidance ?? 1, Eta = st.Eta, Height = st.Height, Width = st.Width, ClipSkip = st.ClipSkip,
        }.Validate(label);
        if (st.Lora is { } lora)
        {
            if (!double.IsFinite(st.LoraScale)) throw new InvalidInputException($"{label("lora_scale")} = {st.LoraScale}: expected a finite number");
            Lora.LoraFile.Check(Lora.RunFolderLora.ResolveFile(lora));
        }
        OutputFolder.Check(outDir, "--out");
    }

    /// <summary>Samples every job and writes <c>&lt;out&gt;/&lt;prompt-index&gt;_&lt;seed&gt;.png</c> with its generation metadata.</summary>
    static List<string> Run(Settings st, string outDir)
    {
        using var pipe = TextToImagePipeline.Load(st.Model, CommonOptions.ParseDevice(st.Device), CommonOptions.ParseDType(st.Dtype));
        if (st.Scheduler is { } name) pipe.UseScheduler(name);
        if (st.Lora is { } loraPath) pipe.LoadLora(loraPath, st.LoraScale);
        var (stepCount, guidanceScale) = pipe.Folder.ResolveSampling(st.Steps, st.Guidance);
        var safe = st.Safe(guidanceScale);
        OutputFolder.Create(outDir, "--out");
        return Progress.Run($"sampling {st.Jobs.Count} image(s)", report =>
        {
            var files = new List<string>();
            int total = st.Jobs.Count * stepCount, done = 0;
            foreach (var job in st.Jobs)
            {
                var options = new SampleOptions
                {
                    Steps = stepCount, GuidanceScale = guidanceScale, NegativePrompt = st.Negative,
                    Eta = st.Eta, Seeds = new[] { job.Seed }, Height = st.Height, Width = st.Width, ClipSkip = st.ClipSkip, Sld = safe,
                };
                int before = done;
                using var result = pipe.Sample(new[] { job.Prompt }, options, progress: (d, _) => report(before + d, total),
                    warn: msg => Console.Error.WriteLine($"warning: {msg}"));
                done = before + options.Steps;
                var image = result.Images[0];
                var info = GenerationInfo.Of(pipe, job.Prompt, job.Index, job.Seed, options, (int)image.shape[1], (int)image.shape[2],
                    st.Scheduler, st.Lora, st.LoraScale);
                var path = Path.Combine(outDir, $"{job.Index}_{job.Seed}.png");
                Images.SavePng(image, path, info.PngText());
                files.Add(path);
            }
            return files;
        });
    }
}

/// <summary>
/// The Safe Latent Diffusion options of <c>fnf sample</c>: a concept, a preset (default medium, diffusers' default)
/// and the five settings, each flag overriding the preset.
/// </summary>
sealed class SldCliOptions
{
    readonly Option<string?> _concept = new("--sld-concept") { Description = "Safe Latent Diffusion: steer away from this concept (a third guidance branch; needs --guidance above 1)" };
    readonly Option<string?> _preset = new("--sld-preset") { Description = $"SLD preset: {string.Join("|", SldSettings.Presets.Keys)} (diffusers' SafetyConfig; default medium)" };
    readonly Option<double?> _scale = new("--sld-guidance-scale") { Description = "SLD guidance scale (at most 1 turns SLD off)" };
    readonly Option<int?> _warmup = new("--sld-warmup-steps") { Description = "Sampling steps before the safety guidance applies (its momentum builds up during them)" };
    readonly Option<double?> _threshold = new("--sld-threshold") { Description = "Elements where cond - concept reaches this get no safety guidance" };
    readonly Option<double?> _momentum = new("--sld-momentum-scale") { Description = "Weight of the safety momentum added to the safety guidance" };
    readonly Option<double?> _beta = new("--sld-momentum-beta") { Description = "Share of the previous momentum kept at each step, in [0, 1]" };

    static readonly Dictionary<string, string> Flags = new()
    {
        ["safety_concept"] = "--sld-concept", ["sld_guidance_scale"] = "--sld-guidance-scale", ["sld_warmup_steps"] = "--sld-warmup-steps",
        ["sld_threshold"] = "--sld-threshold", ["sld_momentum_scale"] = "--sld-momentum-scale", ["sld_mom_beta"] = "--sld-momentum-beta",
    };

    /// <summary>Every SLD option, concept first.</summary>
    public IReadOnlyList<Option> All => new Option[] { _concept, _preset, _scale, _warmup, _threshold, _momentum, _beta };

    public void AddTo(Command cmd)
    {
        foreach (var o in All) cmd.Options.Add(o);
    }

    /// <summary>The SLD options of the call, or null without --sld-concept.</summary>
    public SldOptions? Parse(ParseResult pr, double guidanceScale)
    {
        var concept = pr.GetValue(_concept);
        var given = All.Skip(1).Where(o => pr.GetResult(o) is not null).Select(o => o.Name).ToList();
        if (concept is null)
        {
            if (given.Count > 0) throw new InvalidInputException($"{string.Join(", ", given)} given without --sld-concept TEXT");
            return null;
        }
        if (guidanceScale <= 1.0)
            throw new InvalidInputException($"--sld-concept needs classifier-free guidance: the guidance scale is {guidanceScale}; give --guidance above 1 (safe latent diffusion steers the guided prediction)");
        var preset = pr.GetValue(_preset) is { } name ? SldSettings.Preset(name, "--sld-preset") : SldSettings.Medium;
        var settings = new SldSettings(pr.GetValue(_scale) ?? preset.GuidanceScale, pr.GetValue(_warmup) ?? preset.WarmupSteps,
            pr.GetValue(_threshold) ?? preset.Threshold, pr.GetValue(_momentum) ?? preset.MomentumScale, pr.GetValue(_beta) ?? preset.MomentumBeta);
        var options = new SldOptions(concept, settings);
        options.Validate(key => Flags[key]);
        return options;
    }
}
