using System.Text.Json.Nodes;
using FocusNFix.Conformance;
using FocusNFix.IO;
using FocusNFix.Schedulers;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Schedulers;

/// <summary>Options the golden cases do not cover, checked against identities between the samplers.</summary>
public class SchedulerVariantTests
{
    static JsonConfig Config(string className, params (string Key, JsonNode? Value)[] overrides)
    {
        var root = (JsonObject)JsonConfig.Load(Path.Combine(Golden.Case("scheduler_ddim"), "scheduler_config.json")).Root.DeepClone();
        root["_class_name"] = className;
        foreach (var (k, v) in overrides) root[k] = v;
        return new JsonConfig(root, "test");
    }

    static List<Tensor> Trajectory(IScheduler s, int steps, Func<Tensor, Tensor>? toDdim = null, Generator? gen = null)
    {
        s.SetTimesteps(steps);
        var x = Golden.Inputs("scheduler_ddim")["initial_latent"] * s.InitNoiseSigma;
        var result = new List<Tensor>();
        for (int i = 0; i < s.Timesteps.shape[0]; i++)
        {
            var t = s.Timesteps[i];
            // The same epsilon model for every sampler, evaluated on the DDIM-scaled sample.
            var eps = SchedulerCase.FakeModel(s.ScaleModelInput(x, t), Golden.Outputs("scheduler_ddim")["timesteps"][0]);
            x = s.Step(eps, t, x, generator: gen).PrevSample;
            result.Add(toDdim is null ? x : toDdim(x));
        }
        return result;
    }

    [Theory]
    [InlineData("dpmsolver++", "zero")]
    [InlineData("dpmsolver", "sigma_min")]
    public void FirstOrderDpmSolverIsDdim(string algorithm, string finalSigmas)
    {
        // DDIM (eta 0) is the first-order DPM-Solver in both parametrisations, for the same timesteps.
        var ddim = SchedulerFactory.FromConfig(Config("DDIMScheduler", ("timestep_spacing", "trailing"), ("set_alpha_to_one", true)));
        var dpm = SchedulerFactory.FromConfig(Config("DPMSolverMultistepScheduler", ("timestep_spacing", "trailing"), ("solver_order", 1),
            ("algorithm_type", algorithm), ("final_sigmas_type", finalSigmas)));
        var a = Trajectory(ddim, 10);
        var b = Trajectory(dpm, 10);
        Assert.Equal(ddim.Timesteps.data<long>().ToArray(), dpm.Timesteps.data<long>().ToArray());
        int compare = finalSigmas == "zero" ? 10 : 9; // sigma_min ends at sigma(0), DDIM at alpha = 1
        for (int i = 0; i < compare; i++) Golden.AssertClose(a[i], b[i], 2e-5, 1e-5, $"{algorithm} step {i}");
    }

    [Fact]
    public void EulerIsDdimInScaledCoordinates()
    {
        var ddim = SchedulerFactory.FromConfig(Config("DDIMScheduler", ("set_alpha_to_one", true)));
        var euler = (EulerDiscreteScheduler)SchedulerFactory.FromConfig(Config("EulerDiscreteScheduler"));
        var a = Trajectory(ddim, 10);
        euler.SetTimesteps(10);
        var sigmas = euler.Sigmas!.data<float>().ToArray();
        int k = 0;
        var b = Trajectory(euler, 10, x => x / Math.Sqrt(sigmas[++k] * (double)sigmas[k] + 1));
        for (int i = 0; i < 10; i++) Golden.AssertClose(a[i], b[i], 2e-5, 1e-5, $"step {i}");
    }

    public static TheoryData<string, string> SmokeConfigs => new()
    {
        { "DPMSolverMultistepScheduler", "{\"solver_order\": 3}" },
        { "DPMSolverMultistepScheduler", "{\"solver_type\": \"heun\"}" },
        { "DPMSolverMultistepScheduler", "{\"algorithm_type\": \"sde-dpmsolver++\"}" },
        { "DPMSolverMultistepScheduler", "{\"algorithm_type\": \"sde-dpmsolver\", \"final_sigmas_type\": \"sigma_min\"}" },
        { "DPMSolverMultistepScheduler", "{\"use_lu_lambdas\": true, \"timestep_spacing\": \"leading\"}" },
        { "DPMSolverMultistepScheduler", "{\"prediction_type\": \"v_prediction\", \"thresholding\": true, \"sample_max_value\": 2.0}" },
        { "EulerDiscreteScheduler", "{\"use_karras_sigmas\": true, \"prediction_type\": \"v_prediction\"}" },
        { "EulerDiscreteScheduler", "{\"interpolation_type\": \"log_linear\", \"timestep_spacing\": \"trailing\"}" },
        { "EulerAncestralDiscreteScheduler", "{\"rescale_betas_zero_snr\": true, \"timestep_spacing\": \"trailing\", \"prediction_type\": \"v_prediction\"}" },
        { "DDIMScheduler", "{\"beta_schedule\": \"squaredcos_cap_v2\", \"rescale_betas_zero_snr\": true, \"timestep_spacing\": \"trailing\", \"prediction_type\": \"v_prediction\"}" },
        { "DDIMScheduler", "{\"thresholding\": true, \"prediction_type\": \"sample\"}" },
        { "DDPMScheduler", "{\"variance_type\": \"fixed_large\", \"beta_schedule\": \"linear\", \"clip_sample\": true}" },
        { "DDPMScheduler", "{\"variance_type\": \"fixed_small_log\", \"beta_schedule\": \"sigmoid\", \"timestep_spacing\": \"linspace\"}" },
        { "PNDMScheduler", "{\"prediction_type\": \"v_prediction\", \"timestep_spacing\": \"trailing\"}" },
    };

    [Theory]
    [MemberData(nameof(SmokeConfigs))]
    public void VariantsRunToAFiniteSample(string className, string overridesJson)
    {
        var overrides = JsonNode.Parse(overridesJson)!.AsObject().Select(kv => (kv.Key, kv.Value?.DeepClone())).ToArray();
        var s = SchedulerFactory.FromConfig(Config(className, overrides));
        var traj = Trajectory(s, 12, gen: new Generator(1));
        Assert.All(traj, x => Assert.True(x.isfinite().all().item<bool>(), $"{className} {overridesJson}: non-finite sample"));
        Assert.True(((SchedulerBase)s).AlphasCumprod.isfinite().all().item<bool>());
    }

    [Fact]
    public void ThresholdingWithMaxOneIsClipping()
    {
        var clip = (DdimScheduler)SchedulerFactory.FromConfig(Config("DDIMScheduler", ("clip_sample", true)));
        var thr = (DdimScheduler)SchedulerFactory.FromConfig(Config("DDIMScheduler", ("thresholding", true), ("sample_max_value", 1.0)));
        clip.SetTimesteps(10);
        thr.SetTimesteps(10);
        var x = Golden.Inputs("scheduler_ddim")["initial_latent"] * 3;
        var t = clip.Timesteps[0];
        var eps = SchedulerCase.FakeModel(x, t);
        var a = clip.Step(eps, t, x);
        var b = thr.Step(eps, t, x);
        Assert.True(a.PredOriginalSample!.abs().max().item<float>() <= 1f);
        Assert.True(a.PredOriginalSample.eq(b.PredOriginalSample!).all().item<bool>());
        Assert.True(a.PrevSample.eq(b.PrevSample).all().item<bool>());
    }
}
