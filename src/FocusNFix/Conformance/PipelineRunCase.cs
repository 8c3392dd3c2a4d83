using System.Text.Json.Nodes;
using FocusNFix.IO;
using FocusNFix.Pipelines;
using FocusNFix.Schedulers;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// A recorded pipeline run (inputs.json naming a pipeline folder, prompts and runs; inputs.safetensors with
/// the initial latents): replays every run through <see cref="TextToImagePipeline"/> and returns each
/// step's tensors under the reference names (<c>{run}.step.{i}.latents</c>, ...).
/// </summary>
public static class PipelineRunCase
{
    public static CaseTensors Run(string caseDir)
    {
        var inputsJson = Path.Combine(caseDir, "inputs.json");
        if (!File.Exists(inputsJson)) throw new InvalidInputException($"{inputsJson}: not found (a pipeline run case needs inputs.json)");
        var spec = JsonConfig.Load(inputsJson);
        var pipelineDir = Path.GetFullPath(Path.Combine(caseDir, spec.RequireString("pipeline")));
        var prompts = spec.StringList("prompts") ?? throw new InvalidInputException($"{inputsJson}: 'prompts' is missing");
        var negative = spec.String("negative_prompt", "")!;
        var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
        if (!inputs.TryGetValue("latents", out var latents))
            throw new InvalidInputException($"{Path.Combine(caseDir, "inputs.safetensors")}: tensor 'latents' is missing");
        var expected = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
        var actual = new Dictionary<string, Tensor>();

        using var pipe = TextToImagePipeline.Load(pipelineDir);
        using (no_grad())
        {
            var negatives = Enumerable.Repeat(negative, prompts.Length).ToList();
            actual["input_ids"] = pipe.Tokenizer.Tokenize(prompts);
            actual["negative_input_ids"] = pipe.Tokenizer.Tokenize(negatives);
            actual["prompt_embeds"] = pipe.EncodePrompts(prompts);
            actual["negative_prompt_embeds"] = pipe.EncodePrompts(negatives);
        }

        if (spec.Root["runs"] is not JsonArray runs) throw new InvalidInputException($"{inputsJson}: 'runs' must be a list");
        foreach (var node in runs)
        {
            if (node is not JsonObject runObj) throw new InvalidInputException($"{inputsJson}: each run must be an object");
            var run = new JsonConfig(runObj, inputsJson);
            var name = run.RequireString("name");
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
                Latents = latents,
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
        }
        return new CaseTensors(expected, actual);
    }

    static Tensor Keep(Tensor t) => t.detach().clone().DetachFromDisposeScope();
}
