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
        var cmd = new Command("sample", "Generate images from prompts with a diffusers-format pipeline")
        {
            model, prompt, negative, seed, steps, guidance, scheduler, eta, batch, height, width, clipSkip, lora, loraScale, output, device, dtype, threads,
        };
        cmd.Options.Add(fromPng);
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            Settings settings;
            if (pr.GetValue(fromPng) is { } png)
            {
                var taken = new Option[] { prompt, negative, seed, steps, guidance, scheduler, eta, batch, height, width, clipSkip, lora, loraScale, dtype }
                    .Where(o => pr.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
                if (taken.Count > 0) throw new InvalidInputException($"--from-png {png} takes the generation settings from the file; drop {string.Join(", ", taken)} (only --model, --device, --out and --threads may be given)");
                var info = GenerationInfo.FromPng(png);
                var modelDir = pr.GetValue(model) ?? info.Model;
                if (!Directory.Exists(modelDir))
                    throw new InvalidInputException($"{png}: the model folder '{modelDir}' recorded in the metadata does not exist; pass --model DIR");
                settings = new Settings(modelDir, pr.GetResult(device) is { Implicit: false } ? pr.GetValue(device)! : info.Device, info.Dtype, info.Scheduler,
                    info.Lora, info.LoraScale, info.Steps, info.GuidanceScale, info.NegativePrompt, info.Eta, info.Height, info.Width, info.ClipSkip,
                    new() { (info.PromptIndex, info.Prompt, info.Seed) });
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
                    prompts.SelectMany((p, i) => Enumerable.Range(0, perPrompt).Select(k => (i, p, pr.GetValue(seed) + k))).ToList());
            }
            var outDir = pr.GetValue(output)!;
            if (pr.GetValue(fromPng) is { } source)
            {
                var target = Path.Combine(outDir, $"{settings.Jobs[0].Index}_{settings.Jobs[0].Seed}.png");
                if (Path.GetFullPath(target) == Path.GetFullPath(source))
                    throw new InvalidInputException($"--from-png {source}: the re-created image would overwrite it; pass --out another folder");
            }
            foreach (var f in Run(settings, outDir)) Console.WriteLine(f);
            return 0;
        }));
        return cmd;
    }

    sealed record Settings(string Model, string Device, string Dtype, string? Scheduler, string? Lora, double LoraScale, int? Steps, double? Guidance,
        string? Negative, double Eta, int? Height, int? Width, int ClipSkip, List<(int Index, string Prompt, long Seed)> Jobs);

    /// <summary>Samples every job and writes <c>&lt;out&gt;/&lt;prompt-index&gt;_&lt;seed&gt;.png</c> with its generation metadata.</summary>
    static List<string> Run(Settings st, string outDir)
    {
        using var pipe = TextToImagePipeline.Load(st.Model, CommonOptions.ParseDevice(st.Device), CommonOptions.ParseDType(st.Dtype));
        if (st.Scheduler is { } name) pipe.UseScheduler(name);
        if (st.Lora is { } loraPath) pipe.LoadLora(loraPath, st.LoraScale);
        var (stepCount, guidanceScale) = pipe.Folder.ResolveSampling(st.Steps, st.Guidance);
        Directory.CreateDirectory(outDir);
        return Progress.Run($"sampling {st.Jobs.Count} image(s)", report =>
        {
            var files = new List<string>();
            int total = st.Jobs.Count * stepCount, done = 0;
            foreach (var job in st.Jobs)
            {
                var options = new SampleOptions
                {
                    Steps = stepCount, GuidanceScale = guidanceScale, NegativePrompt = st.Negative,
                    Eta = st.Eta, Seeds = new[] { job.Seed }, Height = st.Height, Width = st.Width, ClipSkip = st.ClipSkip,
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
