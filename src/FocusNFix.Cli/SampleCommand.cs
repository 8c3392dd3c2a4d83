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
        var cmd = new Command("sample", "Generate images from prompts with a diffusers-format pipeline")
        {
            model, prompt, negative, seed, steps, guidance, scheduler, eta, batch, height, width, clipSkip, lora, loraScale, output, device, dtype, threads,
        };
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
                        ClipSkip = pr.GetValue(clipSkip),
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
