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
        var model = new Option<string>("--model") { Description = "Pipeline folder in diffusers format (model_index.json, unet/, ...)", Required = true };
        var prompt = new Option<string[]>("--prompt") { Description = "Prompt; repeat the option for several prompts", Required = true, AllowMultipleArgumentsPerToken = false };
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
        var lora = new Option<string?>("--lora") { Description = "LoRA file for the UNet (.safetensors; PEFT, diffusers, attention-processor or kohya keys)" };
        var loraScale = new Option<double?>("--lora-scale") { Description = "Strength of the LoRA (diffusers' cross_attention_kwargs scale; default 1, 0 = off)" };
        var output = new Option<string>("--out") { Description = "Output folder; images are <prompt-index>_<seed>.png", DefaultValueFactory = _ => "out" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var threads = CommonOptions.Threads();
        var sld = new SldCliOptions();
        var cmd = new Command("sample", "Generate images from prompts with a diffusers-format pipeline")
        {
            model, prompt, negative, seed, steps, guidance, scheduler, eta, batch, height, width, clipSkip, lora, loraScale, output, device, dtype, threads,
        };
        sld.AddTo(cmd);
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            int perPrompt = pr.GetValue(batch);
            if (perPrompt < 1) throw new InvalidInputException($"--batch {perPrompt}: expected at least 1");
            if (pr.GetValue(loraScale) is not null && pr.GetValue(lora) is null) throw new InvalidInputException("--lora-scale was given without --lora FILE");
            using var pipe = TextToImagePipeline.Load(pr.GetValue(model)!, CommonOptions.ParseDevice(pr.GetValue(device)!), CommonOptions.ParseDType(pr.GetValue(dtype)!));
            if (pr.GetValue(scheduler) is { } name) pipe.UseScheduler(name);
            if (pr.GetValue(lora) is { } loraPath) pipe.LoadLora(loraPath, pr.GetValue(loraScale) ?? 1.0);
            var (stepCount, guidanceScale) = pipe.Folder.ResolveSampling(pr.GetValue(steps), pr.GetValue(guidance));
            var safe = sld.Parse(pr, guidanceScale);
            var prompts = pr.GetValue(prompt)!;
            var jobs = prompts.SelectMany((p, i) => Enumerable.Range(0, perPrompt).Select(k => (Index: i, Prompt: p, Seed: pr.GetValue(seed) + k))).ToList();
            var outDir = pr.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            var written = Progress.Run($"sampling {jobs.Count} image(s)", report =>
            {
                var files = new List<string>();
                int total = jobs.Count * stepCount, done = 0;
                foreach (var job in jobs)
                {
                    var options = new SampleOptions
                    {
                        Steps = stepCount, GuidanceScale = guidanceScale, NegativePrompt = pr.GetValue(negative),
                        Eta = pr.GetValue(eta), Seeds = new[] { job.Seed }, Height = pr.GetValue(height), Width = pr.GetValue(width),
                        ClipSkip = pr.GetValue(clipSkip), Sld = safe,
                    };
                    int before = done;
                    using var result = pipe.Sample(new[] { job.Prompt }, options, progress: (d, _) => report(before + d, total),
                        warn: msg => Console.Error.WriteLine($"warning: {msg}"));
                    done = before + options.Steps;
                    var path = Path.Combine(outDir, $"{job.Index}_{job.Seed}.png");
                    Images.SavePng(result.Images[0], path);
                    files.Add(path);
                }
                return files;
            });
            foreach (var f in written) Console.WriteLine(f);
            return 0;
        }));
        return cmd;
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

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { _concept, _preset, _scale, _warmup, _threshold, _momentum, _beta }) cmd.Options.Add(o);
    }

    /// <summary>The SLD options of the call, or null without --sld-concept.</summary>
    public SldOptions? Parse(ParseResult pr, double guidanceScale)
    {
        var concept = pr.GetValue(_concept);
        var given = new Option[] { _preset, _scale, _warmup, _threshold, _momentum, _beta }.Where(o => pr.GetResult(o) is not null).Select(o => o.Name).ToList();
        if (concept is null)
        {
            if (given.Count > 0) throw new InvalidInputException($"{string.Join(", ", given)} given without --sld-concept TEXT");
            return null;
        }
        if (guidanceScale <= 1.0)
            throw new InvalidInputException($"--sld-concept needs classifier-free guidance: the guidance scale is {guidanceScale}; give --guidance above 1 (safe latent diffusion steers the guided prediction)");
        var preset = pr.GetValue(_preset) is { } name
            ? SldSettings.Presets.TryGetValue(name, out var p) ? p : throw new InvalidInputException($"--sld-preset '{name}': expected one of {string.Join(", ", SldSettings.Presets.Keys)}")
            : SldSettings.Medium;
        var settings = new SldSettings(pr.GetValue(_scale) ?? preset.GuidanceScale, pr.GetValue(_warmup) ?? preset.WarmupSteps,
            pr.GetValue(_threshold) ?? preset.Threshold, pr.GetValue(_momentum) ?? preset.MomentumScale, pr.GetValue(_beta) ?? preset.MomentumBeta);
        var options = new SldOptions(concept, settings);
        options.Validate(key => Flags[key]);
        return options;
    }
}
