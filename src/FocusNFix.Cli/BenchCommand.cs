using System.CommandLine;
using System.Text.Json;
using FocusNFix.Pipelines;
using FocusNFix.Training;
using static TorchSharp.torch;

namespace FocusNFix.Cli;

/// <summary><c>fnf bench</c>: JSON figures for UNet forward/backward, training steps for several K, and sampling throughput.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Pipeline folder", DefaultValueFactory = _ => Path.Combine(WorldCommand.DefaultModels, "base") };
        var batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => 4 }.AtLeast(1);
        var repeats = new Option<int>("--repeats") { Description = $"Timed repeats per figure after one warm-up, median reported (default 5; {SdBenchCli.DefaultRepeats} with --preset)", DefaultValueFactory = _ => 5 }.AtLeast(1);
        var steps = CommonOptions.SamplingSteps();
        var guidance = CommonOptions.Guidance();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var threads = CommonOptions.Threads();
        var competitors = new Option<int>("--competitors")
        {
            Description = "Also measure everything while N busy processes (yes > /dev/null) compete for the CPU, and print the slowdowns",
            DefaultValueFactory = _ => 0,
        };
        competitors.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 0 or > 64) r.AddError($"--competitors {r.GetValueOrDefault<int>()}: expected 0 to 64");
        });
        var cmd = new Command("bench", "Benchmark the model and training steps, or a Stable Diffusion-sized preset (--preset); prints JSON") { model, batch, repeats, steps, guidance, device, dtype, threads, competitors };
        foreach (var o in SdBenchCli.All) cmd.Options.Add(o);
        cmd.Subcommands.Add(SdBenchCli.OneCommand());
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            if (pr.GetValue(SdBenchCli.Preset) is { } preset)
                return SdBenchCli.Run(pr, preset, pr.GetResult(repeats) is { Implicit: false } ? pr.GetValue(repeats) : SdBenchCli.DefaultRepeats, pr.GetValue(threads), pr.GetValue(dtype)!,
                    new Option[] { model, batch, steps, guidance, device, competitors });
            var presetOnly = SdBenchCli.All.Where(o => o != SdBenchCli.Preset && pr.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToList();
            if (presetOnly.Count > 0) throw new InvalidInputException($"{string.Join(", ", presetOnly)}: apply to --preset benchmarks only");
            CommonOptions.CheckSampling(pr.GetValue(steps), pr.GetValue(guidance));
            using var pipe = TextToImagePipeline.Load(pr.GetValue(model)!, CommonOptions.ParseDevice(pr.GetValue(device)!), CommonOptions.ParseDType(pr.GetValue(dtype)!));
            var (stepCount, guidanceScale) = pipe.Folder.ResolveSampling(pr.GetValue(steps), pr.GetValue(guidance));
            List<BenchFigure> Figures() => Benchmark.Run(pipe, pr.GetValue(batch), pr.GetValue(repeats), stepCount, new[] { 1, 2, 4 }, msg => Console.Error.WriteLine(msg), guidanceScale);
            int n = pr.GetValue(competitors);
            var contention = n > 0 ? Benchmark.RunWithContention(Figures, n, msg => Console.Error.WriteLine(msg)) : null;
            var json = JsonSerializer.Serialize(new
            {
                model = pr.GetValue(model), device = pr.GetValue(device), dtype = pr.GetValue(dtype), batch = pr.GetValue(batch),
                threads = get_num_threads(), sampling_steps = stepCount, guidance_scale = guidanceScale,
                native_settings = NativeSettings.Effective(),
                figures = contention?.Alone ?? Figures(),
                contention = contention is null ? null : new { competitors = n, figures = contention.WithCompetitors, slowdowns = contention.Slowdowns },
            }, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower });
            Console.WriteLine(json);
            return 0;
        }));
        return cmd;
    }
}
