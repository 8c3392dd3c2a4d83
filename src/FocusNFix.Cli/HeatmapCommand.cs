using System.CommandLine;
using FocusNFix.Evaluation;
using FocusNFix.IO;
using FocusNFix.Masks;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using static TorchSharp.torch;

namespace FocusNFix.Cli;

/// <summary><c>fnf heatmap</c>: sample a base image and write it with its heatmap, overlay and mask.</summary>
public static class HeatmapCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Pipeline folder", Required = true };
        var heatmap = new Option<string>("--heatmap") { Description = "Heatmap source: reward-model:DIR, onnx:FILE, torchscript:FILE, mask-folder:DIR, boxes:FILE, saliency:gradient-x-input|smoothgrad|grad-cam", Required = true };
        var reward = new Option<string?>("--reward") { Description = "Reward whose saliency a saliency source maps (TYPE:PATH[,EXTRA])" };
        var prompt = new Option<string>("--prompt") { Description = "Prompt", Required = true };
        var seed = new Option<long>("--seed") { Description = "Seed", DefaultValueFactory = _ => 0 };
        var promptIndex = new Option<int>("--prompt-index") { Description = "Prompt index used to look up mask-folder and boxes entries", DefaultValueFactory = _ => 0 };
        var steps = CommonOptions.SamplingSteps();
        var guidance = CommonOptions.Guidance();
        var threshold = new Option<double>("--threshold") { Description = "Mask threshold on the normalised heatmap", DefaultValueFactory = _ => 0.5 };
        var dilate = new Option<int>("--dilate") { Description = "Mask dilation in pixels", DefaultValueFactory = _ => 2 };
        var output = new Option<string>("--out") { Description = "Output folder; files are <prompt-index>_<seed>_{image,heatmap,overlay,mask}.png", DefaultValueFactory = _ => "out/heatmap" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace this prompt index and seed's files from an earlier run (otherwise that is an error)" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var threads = CommonOptions.Threads();
        var cmd = new Command("heatmap", "Sample a base image and write it, its heatmap, the heatmap overlay and the mask")
        {
            model, heatmap, reward, prompt, seed, promptIndex, steps, guidance, threshold, dilate, output, overwrite, device, dtype, threads,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            CommonOptions.ApplyThreads(pr.GetValue(threads));
            // Refused before the heatmap source and the pipeline load, not after sampling.
            OutputFolder.Check(pr.GetValue(output)!, "--out");
            CommonOptions.CheckSampling(pr.GetValue(steps), pr.GetValue(guidance));
            var maskOptions = new MaskOptions { Threshold = pr.GetValue(threshold), DilatePixels = pr.GetValue(dilate), Normalise = false };
            maskOptions.Validate();
            var spec = SourceSpecs.Heatmap(pr.GetValue(heatmap)!);
            var placement = CommonOptions.ParseDevice(pr.GetValue(device)!);
            var precision = CommonOptions.ParseDType(pr.GetValue(dtype)!);
            if (spec.Type == "saliency" && pr.GetValue(reward) is null) throw new InvalidInputException("--heatmap saliency:... needs --reward TYPE:PATH (the reward whose saliency is mapped)");
            IReward? r = pr.GetValue(reward) is { } rs ? RewardFactory.CreateReward(SourceSpecs.Reward(rs), placement) : null;
            using var ownedReward = r as IDisposable;
            using var source = RewardFactory.CreateHeatmap(spec, placement, r);
            var dir = pr.GetValue(output)!;
            long seedValue = pr.GetValue(seed);
            int index = pr.GetValue(promptIndex);
            var names = new[] { "image", "heatmap", "overlay", "mask" }.ToDictionary(k => k, k => Path.Combine(dir, $"{index}_{seedValue}_{k}.png"));
            var existing = names.Values.Where(File.Exists).ToList();
            if (existing.Count > 0 && !pr.GetValue(overwrite))
                throw new InvalidInputException($"{existing[0]}: already exists{(existing.Count > 1 ? $" (and {existing.Count - 1} more of this prompt and seed)" : "")}; pass --overwrite to replace, or choose another --out");
            using var pipe = TextToImagePipeline.Load(pr.GetValue(model)!, placement, precision);
            var p = pr.GetValue(prompt)!;
            var (stepCount, guidanceScale) = pipe.Folder.ResolveSampling(pr.GetValue(steps), pr.GetValue(guidance));
            var options = new SampleOptions { Steps = stepCount, GuidanceScale = guidanceScale, Seeds = new[] { seedValue } };
            using var result = Progress.Run("sampling", report => pipe.Sample(new[] { p }, options, progress: report));
            var heat = source.Compute(result.Images, new[] { new HeatmapKey(p, index, seedValue) }).detach();
            var mask = HeatmapMask.FromHeatmap(heat, maskOptions);
            var info = GenerationInfo.Of(pipe, p, index, seedValue, options, (int)result.Images.shape[2], (int)result.Images.shape[3]);
            Images.SavePng(result.Images[0], names["image"], info.PngText());
            HeatmapMask.SavePng(heat[0], names["heatmap"], info.As("heatmap").PngText());
            Images.SavePng(ReportWriter.HeatmapOverlay(result.Images[0], heat[0]), names["overlay"], info.As("overlay").PngText());
            HeatmapMask.SavePng(mask[0], names["mask"], info.As("mask").PngText());
            Console.WriteLine($"wrote {string.Join(", ", names.Values.Select(Path.GetFileName))} to {dir} (mask covers {mask.mean().item<float>():P1} of the image)");
            return 0;
        }));
        return cmd;
    }
}
