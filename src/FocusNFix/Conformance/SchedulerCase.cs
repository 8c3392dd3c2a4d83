using FocusNFix.IO;
using FocusNFix.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// Golden scheduler cases (scheduler_ddim, scheduler_euler, ...): the pipeline-style loop with the fake
/// model eps(x, t) = 0.1 x cos(t / 1000) + 0.05 sin(x), fed the recorded variance noise where the case has it.
/// </summary>
public static class SchedulerCase
{
    /// <summary>The golden fake model: cos in double, tensor ops in the sample's dtype.</summary>
    public static Tensor FakeModel(Tensor x, Tensor timestep)
    {
        double c = Math.Cos(ScheduleMath.HostScalar(timestep) / 1000);
        return x * 0.1 * c + x.sin() * 0.05;
    }

    public static CaseTensors Run(string caseDir)
    {
        var expected = Safetensors.Load(Path.Combine(caseDir, "outputs.safetensors"));
        var inputs = Safetensors.Load(Path.Combine(caseDir, "inputs.safetensors"));
        var scheduler = SchedulerFactory.Load(caseDir);
        var actual = new Dictionary<string, Tensor>();

        using (no_grad())
        {
            int steps = (int)inputs["num_inference_steps"].item<long>();
            scheduler.SetTimesteps(steps);
            var initial = inputs["initial_latent"];
            var x = initial * scheduler.InitNoiseSigma;
            actual["initial_latent"] = initial;
            actual["latents_scaled"] = x;
            var timesteps = scheduler.Timesteps;
            for (int i = 0; i < timesteps.shape[0]; i++)
            {
                var t = timesteps[i];
                inputs.TryGetValue($"step.{i}.variance_noise", out var noise);
                var xin = scheduler.ScaleModelInput(x, t);
                var eps = FakeModel(xin, t);
                var output = scheduler.Step(eps, t, x, noise: noise);
                actual[$"step.{i}.model_input"] = xin;
                actual[$"step.{i}.model_output"] = eps;
                actual[$"step.{i}.prev_sample"] = output.PrevSample;
                if (output.PredOriginalSample is not null) actual[$"step.{i}.pred_original_sample"] = output.PredOriginalSample;
                if (noise is not null) actual[$"step.{i}.variance_noise"] = noise; // echoes the input that was fed
                x = output.PrevSample;
            }
            actual["final_sample"] = x;
        }

        actual["timesteps"] = scheduler.Timesteps;
        actual["alphas_cumprod"] = scheduler.AlphasCumprod;
        actual["init_noise_sigma"] = tensor((float)scheduler.InitNoiseSigma);
        if (scheduler is SchedulerBase b)
        {
            actual["betas"] = b.Betas;
            if (b.Sigmas is not null) actual["sigmas"] = b.Sigmas;
        }

        var missing = expected.Keys.Where(k => !actual.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidOperationException($"{caseDir}: the scheduler case runner computed no value for {string.Join(", ", missing)}");
        // Names we compute that the case does not record (e.g. DPM's x0) are left out of the comparison.
        foreach (var k in actual.Keys.Where(k => !expected.ContainsKey(k)).ToList()) actual.Remove(k);
        return new CaseTensors(expected, actual);
    }
}
