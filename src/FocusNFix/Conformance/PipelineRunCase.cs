using System.Text.Json.Nodes;
using FocusNFix.IO;
using FocusNFix.Pipelines;
using FocusNFix.Schedulers;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// A recorded pipeline run (inputs.json naming a pipeline folder, prompts, negative prompt, height/width and runs;
/// inputs.safetensors with the initial latents): replays every run through <see cref="TextToImagePipeline"/> and
/// returns each step's tensors under the reference names (<c>{run}.step.{i}.latents</c>, ...). A case with a
/// <c>safety_concept</c> is a Safe Latent Diffusion run (diffusers' StableDiffusionPipelineSafe): each run then
/// gives the five <c>sld_*</c> settings.
/// </summary>
public static class PipelineRunCase
{
    /// <param name="safeLatentDiffusion">The case kind is sld_pipeline_run: inputs.json must name a safety_concept (and
    /// must not otherwise), so that a mistaken --kind is an error, not a run without the safety branch.</param>
    public static CaseTensors Run(string caseDir, bool safeLatentDiffusion)
    {
        var inputsJson = Path.Combine(caseDir, "inputs.json");
        if (!File.Exists(inputsJson)) throw new InvalidInputException($"{inputsJson}: not found (a pipeline run case needs inputs.json)");
        var spec = JsonConfig.Load(inputsJson);
        var pipelineDir = Path.GetFullPath(Path.Combine(caseDir, spec.RequireString("pipeline")));
        var prompts = spec.StringList("prompts") ?? throw new InvalidInputException($"{inputsJson}: 'prompts' is missing");
        var negative = spec.String("negative_prompt", "")!;
        var concept = spec.String("safety_concept");
        if (safeLatentDiffusion != (concept is not null))
            throw new InvalidInputException(safeLatentDiffusion
                ? $"{inputsJson}: 'safety_concept' is missing (an sld_pipeline_run case needs the concept text)"
                : $"{inputsJson}: has a 'safety_concept', so it is an sld_pipeline_run case (Safe Latent Diffusion), not a plain pipeline run");
        int? height = SizeOrNull(spec, "height"), width = SizeOrNull(spec, "width");
        var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
        if (!inputs.TryGetValue("latents", out var latents))
            throw new InvalidInputException($"{Path.Combine(caseDir, "inputs.safetensors")}: tensor 'latents' is missing");
        var expected = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
        var actual = new Dictionary<string, Tensor>();
        var notes = new List<string>();

        using var pipe = TextToImagePipeline.Load(pipelineDir);
        using (no_grad())
        {
            var negatives = Enumerable.Repeat(negative, prompts.Length).ToList();
            actual["input_ids"] = pipe.Tokenizer.Tokenize(prompts);
            actual["negative_input_ids"] = pipe.Tokenizer.Tokenize(negatives);
            actual["prompt_embeds"] = pipe.EncodePrompts(prompts);
            actual["negative_prompt_embeds"] = pipe.EncodePrompts(negatives);
            if (concept is not null) actual["safety_concept_embeds"] = pipe.EncodePrompts(new[] { concept }).repeat(prompts.Length, 1, 1);
        }

        if (spec.Root["runs"] is not JsonArray runs) throw new InvalidInputException($"{inputsJson}: 'runs' must be a list");
        foreach (var node in runs)
        {
            if (node is not JsonObject runObj) throw new InvalidInputException($"{inputsJson}: each run must be an object");
            var run = new JsonConfig(runObj, inputsJson);
            var name = run.RequireString("name");
            // A run the reference did not record would otherwise pass unchecked: nothing would be compared.
            if (!expected.ContainsKey(name + ".final_latents"))
                throw new InvalidInputException($"{Path.Combine(caseDir, "outputs.safetensors")}: run '{name}' of {inputsJson} has no tensor '{name}.final_latents'");
            var schedulerConfig = run.String("scheduler_config");
            pipe.Scheduler = schedulerConfig is null
                ? SchedulerFactory.FromConfig(pipe.SchedulerConfig)
                : SchedulerFactory.Load(Path.Combine(caseDir, schedulerConfig));
            var options = new SampleOptions
            {
                Steps = run.RequireInt("num_inference_steps"),
                GuidanceScale = run.Double("guidance_scale", 7.5),
                Eta = run.Double("eta", 0.0),
                NegativePrompt = negative,
                Height = SizeOrNull(run, "height") ?? height,
                Width = SizeOrNull(run, "width") ?? width,
                Latents = latents,
                Sld = concept is null ? null : new SldOptions(concept, new SldSettings(
                    Need(run, "sld_guidance_scale"), run.RequireInt("sld_warmup_steps"), Need(run, "sld_threshold"),
                    Need(run, "sld_momentum_scale"), Need(run, "sld_mom_beta"))),
            };
            string p = name + ".";
            var result = pipe.Sample(prompts, options, onStep: s =>
            {
                string k = $"{p}step.{s.Index}.";
                actual[k + "timestep"] = Keep(s.Timestep);
                actual[k + "latent_model_input"] = Keep(s.LatentModelInput);
                actual[k + "unet_output"] = Keep(s.UnetOutput);
                actual[k + "noise_pred"] = Keep(s.NoisePred);
                if (s.PredOriginalSample is not null) actual[k + "pred_original_sample"] = Keep(s.PredOriginalSample);
                actual[k + "latents"] = Keep(s.Latents);
            });
            actual[p + "timesteps"] = pipe.Scheduler.Timesteps.clone();
            actual[p + "init_noise_sigma"] = tensor((float)pipe.Scheduler.InitNoiseSigma);
            actual[p + "latents_initial"] = latents * (float)pipe.Scheduler.InitNoiseSigma;
            actual[p + "final_latents"] = result.FinalLatents;
            if (pipe.Vae is not null)
            {
                actual[p + "decoder_input"] = result.FinalLatents / pipe.Vae.Config.ScalingFactor;
                using (no_grad()) actual[p + "image_raw"] = pipe.DecodeRaw(result.FinalLatents);
            }
            actual[p + "image"] = result.Images;
            actual[p + "image_uint8"] = Images.ToUint8(result.Images);
            if (options.Sld is { } sld) notes.Add(SwitchFlipNote(name, sld.Settings.Threshold, expected, actual));
        }
        return new CaseTensors(expected, actual, notes);
    }

    /// <summary>
    /// SLD's where(cond - concept >= threshold) is a hard switch: a 1e-6 UNet difference can put an element on the
    /// other side of it and change its guidance by up to |concept - uncond|. The golden README asks for the count of
    /// such elements; it explains a noise_pred outside the tolerance that the UNet outputs do not.
    /// </summary>
    static string SwitchFlipNote(string run, double threshold, Dictionary<string, Tensor> expected, Dictionary<string, Tensor> actual)
    {
        using var scope = NewDisposeScope();
        long flips = 0, elements = 0;
        int compared = 0;
        for (int i = 0; actual.TryGetValue($"{run}.step.{i}.unet_output", out var act); i++)
        {
            if (!expected.TryGetValue($"{run}.step.{i}.unet_output", out var exp) || !exp.shape.SequenceEqual(act.shape)) continue;
            Tensor Switch(Tensor output) { var b = output.chunk(3, 0); return (b[1] - b[2]).ge(threshold); }
            var e = Switch(exp);
            flips += e.ne(Switch(act)).sum().item<long>();
            elements += e.numel();
            compared++;
        }
        return $"{run}: {flips} of {elements} elements on the other side of the SLD threshold switch (cond - concept >= {threshold}) than in the reference, over {compared} step(s)";
    }

    static double Need(JsonConfig config, string key) =>
        config.DoubleOrNull(key) ?? throw new InvalidInputException($"{config.Source}: required key '{key}' is missing");

    /// <summary>A size in pixels, or null (the key absent or null: the pipeline's default size, as diffusers).</summary>
    static int? SizeOrNull(JsonConfig config, string key) => config.Has(key) ? config.RequireInt(key) : null;

    static Tensor Keep(Tensor t) => t.detach().clone().DetachFromDisposeScope();
}
