using FocusNFix.Conformance;
using FocusNFix.IO;
using FocusNFix.Schedulers;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Schedulers;

public class SchedulerBehaviourTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-sched-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    static JsonConfig SdDdimConfig() => JsonConfig.Load(Path.Combine(Golden.Case("scheduler_ddim"), "scheduler_config.json"));

    static DdimScheduler Ddim(string spacing)
    {
        var root = (System.Text.Json.Nodes.JsonObject)SdDdimConfig().Root.DeepClone();
        root["timestep_spacing"] = spacing;
        return new DdimScheduler(new JsonConfig(root, "test"));
    }

    static long[] Longs(Tensor t) => t.data<long>().ToArray();

    // By hand from the diffusers formulas, T = 1000, N = 7, steps_offset 1:
    //  leading:  (arange(7) * (1000 // 7)).round()[::-1] + 1 = 852..0 step 142, + 1
    //  trailing: round(arange(1000, 0, -1000/7)) - 1 = [1000, 857, 714, 571, 429, 286, 143] - 1
    //  linspace: round(linspace(0, 999, 7))[::-1]; 166.5 -> 166, 499.5 -> 500, 832.5 -> 832 (half to even)
    [Theory]
    [InlineData("leading", new long[] { 853, 711, 569, 427, 285, 143, 1 })]
    [InlineData("trailing", new long[] { 999, 856, 713, 570, 428, 285, 142 })]
    [InlineData("linspace", new long[] { 999, 832, 666, 500, 333, 166, 0 })]
    public void DdimTimestepSpacingForSevenSteps(string spacing, long[] expected)
    {
        var s = Ddim(spacing);
        s.SetTimesteps(7);
        Assert.Equal(ScalarType.Int64, s.Timesteps.dtype);
        Assert.Equal(expected, Longs(s.Timesteps));
    }

    [Fact]
    public void PndmWithRungeKuttaWarmupHasTheDiffusersSchedule()
    {
        var root = (System.Text.Json.Nodes.JsonObject)SdDdimConfig().Root.DeepClone();
        root["_class_name"] = "PNDMScheduler";
        root["skip_prk_steps"] = false;
        var s = SchedulerFactory.FromConfig(new JsonConfig(root, "test"));
        s.SetTimesteps(10);
        // prk: last four of [1..901] with +50 midpoints, each inner one twice; then plms [601 .. 1].
        Assert.Equal(new long[] { 901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1 }, Longs(s.Timesteps));
        var x = ones(1, 4, 2, 2);
        foreach (var t in Enumerable.Range(0, (int)s.Timesteps.shape[0]).Select(i => s.Timesteps[i]))
            x = s.Step(SchedulerCase.FakeModel(x, t), t, x).PrevSample;
        Assert.True(x.isfinite().all().item<bool>());
    }

    public static TheoryData<string> Names => new() { "ddim", "ddpm", "euler", "euler-a", "dpmpp-2m", "dpmpp-2m-karras", "pndm" };

    [Theory]
    [MemberData(nameof(Names))]
    public void StepIsDifferentiableThroughSeveralSteps(string name)
    {
        var s = SchedulerFactory.Create(name, SdDdimConfig());
        s.SetTimesteps(10);
        var gen = manual_seed(7);
        var x = randn(new long[] { 1, 4, 4, 4 }, generator: gen) * s.InitNoiseSigma;
        x.requires_grad = true;
        var sample = x;
        var outputs = new List<Tensor>();
        for (int i = 0; i < 4; i++)
        {
            var t = s.Timesteps[i];
            var eps = SchedulerCase.FakeModel(s.ScaleModelInput(sample, t), t).detach();
            eps.requires_grad = true;
            outputs.Add(eps);
            var noise = randn(eps.shape, generator: gen);
            sample = s.Step(eps, t, sample, noise: noise).PrevSample;
        }
        sample.sum().backward();
        foreach (var (eps, i) in outputs.Select((e, i) => (e, i)))
        {
            var g = eps.grad;
            Assert.NotNull(g);
            Assert.True(g!.isfinite().all().item<bool>(), $"{name}: non-finite grad for model output {i}");
            Assert.True(g.abs().sum().item<float>() > 0, $"{name}: zero grad for model output {i}");
        }
        Assert.True(x.grad!.isfinite().all().item<bool>() && x.grad.abs().sum().item<float>() > 0, $"{name}: no grad w.r.t. the initial sample");
    }

    [Fact]
    public void AddNoiseMatchesTheForwardProcessFormula()
    {
        var x = randn(2, 4, 3, 3);
        var n = randn(2, 4, 3, 3);
        var ts = tensor(new long[] { 10, 500 });
        foreach (var name in new[] { "ddim", "ddpm", "pndm" })
        {
            var s = SchedulerFactory.Create(name, SdDdimConfig());
            var ac = s.AlphasCumprod.data<float>().ToArray();
            var got = s.AddNoise(x, n, ts);
            for (int b = 0; b < 2; b++)
            {
                double a = ac[b == 0 ? 10 : 500];
                var want = x[b].to_type(ScalarType.Float64) * Math.Sqrt(a) + n[b].to_type(ScalarType.Float64) * Math.Sqrt(1 - a);
                Golden.AssertClose(want, got[b], 1e-6, 0, $"{name} add_noise row {b}");
            }
            // A 0-d timestep applies to the whole batch.
            Golden.AssertClose(s.AddNoise(x, n, tensor(new long[] { 500, 500 })), s.AddNoise(x, n, tensor(500L)), 0, 0, $"{name} 0-d timestep");
        }

        var euler = (EulerDiscreteScheduler)SchedulerFactory.Create("euler", SdDdimConfig());
        euler.SetTimesteps(10);
        var sig = euler.Sigmas!.data<float>().ToArray();
        var et = tensor(new float[] { 901, 101 });
        var eg = euler.AddNoise(x, n, et);
        Golden.AssertClose(x[0] + n[0] * sig[0], eg[0], 1e-6, 0, "euler row 0");
        Golden.AssertClose(x[1] + n[1] * sig[8], eg[1], 1e-6, 0, "euler row 1");

        var dpm = (DpmSolverMultistepScheduler)SchedulerFactory.Load(Golden.Case("scheduler_dpmpp_2m"));
        dpm.SetTimesteps(10);
        var ds = dpm.Sigmas!.data<float>().ToArray();
        var dg = dpm.AddNoise(x, n, tensor(new long[] { 999, 500 }));
        foreach (var (row, i) in new[] { (0, 0), (1, 5) })
        {
            double alpha = 1 / Math.Sqrt(ds[i] * (double)ds[i] + 1);
            Golden.AssertClose(x[row] * alpha + n[row] * (ds[i] * alpha), dg[row], 1e-6, 0, $"dpm row {row}");
        }
    }

    [Fact]
    public void EulerFromTheSdDdimConfigInheritsLeadingSpacing()
    {
        var s = SchedulerFactory.Create("euler", SdDdimConfig());
        Assert.Equal("EulerDiscreteScheduler", s.ClassName);
        s.SetTimesteps(10);
        Assert.Equal(8.450067, s.InitNoiseSigma, 1e-5);
        Assert.Equal(ScalarType.Float32, s.Timesteps.dtype);

        // Bit-identical to what the reference pipeline run used (EulerDiscreteScheduler.from_config of its DDIM config).
        var run = Golden.Case("pipeline_tiny_sd15_run");
        var outputs = Safetensors.Load(Path.Combine(run, "outputs.safetensors"));
        var fromPipeline = SchedulerFactory.Create("euler", JsonConfig.Load(Path.Combine(Golden.Case("pipeline_tiny_sd15"), "scheduler", "scheduler_config.json")));
        fromPipeline.SetTimesteps(10);
        Assert.True(outputs["euler.timesteps"].eq(fromPipeline.Timesteps).all().item<bool>());
        Assert.Equal(outputs["euler.init_noise_sigma"].item<float>(), (float)fromPipeline.InitNoiseSigma);
        var saved = SchedulerFactory.Load(Path.Combine(run, "euler_scheduler"));
        saved.SetTimesteps(10);
        Assert.True(saved.Timesteps.eq(fromPipeline.Timesteps).all().item<bool>());
        Assert.True(outputs["ddim.timesteps"].eq(SetUp(SchedulerFactory.Load(Golden.Case("pipeline_tiny_sd15")), 10).Timesteps).all().item<bool>());
    }

    static IScheduler SetUp(IScheduler s, int n) { s.SetTimesteps(n); return s; }

    [Fact]
    public void CreateGivesTheRequestedClassForEveryName()
    {
        var expected = new Dictionary<string, string>
        {
            ["ddim"] = "DDIMScheduler", ["ddpm"] = "DDPMScheduler", ["euler"] = "EulerDiscreteScheduler",
            ["euler-a"] = "EulerAncestralDiscreteScheduler", ["dpmpp-2m"] = "DPMSolverMultistepScheduler",
            ["dpmpp-2m-karras"] = "DPMSolverMultistepScheduler", ["pndm"] = "PNDMScheduler",
        };
        Assert.Equal(expected.Keys.OrderBy(k => k), SchedulerFactory.Names.OrderBy(k => k));
        foreach (var (name, cls) in expected) Assert.Equal(cls, SchedulerFactory.Create(name, SdDdimConfig()).ClassName);
        Assert.True(((DpmSolverMultistepScheduler)SchedulerFactory.Create("dpmpp-2m-karras", SdDdimConfig())).UseKarrasSigmas);
        Assert.False(((DpmSolverMultistepScheduler)SchedulerFactory.Create("dpmpp-2m", JsonConfig.Load(Path.Combine(Golden.Case("scheduler_dpmpp_2m_karras"), "scheduler_config.json")))).UseKarrasSigmas);
        var e = Assert.Throws<InvalidInputException>(() => SchedulerFactory.Create("lms", SdDdimConfig()));
        Assert.Contains("'lms'", e.Message);
        Assert.Contains("dpmpp-2m-karras", e.Message);
    }

    [Fact]
    public void UnknownClassNameIsRefusedNamingFileAndValue()
    {
        var path = Path.Combine(_dir, "scheduler_config.json");
        File.WriteAllText(path, "{\"_class_name\": \"LMSDiscreteScheduler\", \"num_train_timesteps\": 1000}");
        var e = Assert.Throws<InvalidInputException>(() => SchedulerFactory.Load(_dir));
        Assert.Contains(path, e.Message);
        Assert.Contains("LMSDiscreteScheduler", e.Message);

        File.WriteAllText(path, "{\"_class_name\": \"DDIMScheduler\", \"prediction_type\": \"flow\"}");
        e = Assert.Throws<InvalidInputException>(() => SchedulerFactory.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("prediction_type", e.Message);
        Assert.Contains("flow", e.Message);

        File.WriteAllText(path, "{\"num_train_timesteps\": 1000}");
        Assert.Contains("_class_name", Assert.Throws<InvalidInputException>(() => SchedulerFactory.Load(path)).Message);
        Assert.Contains("no scheduler_config.json", Assert.Throws<InvalidInputException>(() => SchedulerFactory.Load(Path.Combine(_dir, "sub"))).Message
            + Assert.Throws<InvalidInputException>(() => SchedulerFactory.Load(Directory.CreateDirectory(Path.Combine(_dir, "empty")).FullName)).Message);
    }

    [Fact]
    public void DpmConfigWithMinusInfinityLoadsAndAFiniteClipTrimsTheSchedule()
    {
        var dpm = Assert.IsType<DpmSolverMultistepScheduler>(SchedulerFactory.Load(Golden.Case("scheduler_dpmpp_2m")));
        Assert.Equal(double.NegativeInfinity, dpm.LambdaMinClipped);
        Assert.Contains("-Infinity", File.ReadAllText(Path.Combine(Golden.Case("scheduler_dpmpp_2m"), "scheduler_config.json")));

        // lambda(t) = log(sqrt(ac) / sqrt(1 - ac)) falls below -2 only for t near the end; those timesteps are dropped.
        var root = (System.Text.Json.Nodes.JsonObject)dpm.Config.Root.DeepClone();
        root["lambda_min_clipped"] = -2.0;
        var clipped = new DpmSolverMultistepScheduler(new JsonConfig(root, "test"));
        clipped.SetTimesteps(10);
        var ac = clipped.AlphasCumprod.data<float>().ToArray();
        int last = ac.Count(a => MathF.Log(MathF.Sqrt(a)) - MathF.Log(MathF.Sqrt(1f - a)) >= -2f);
        Assert.True(last < 1000);
        Assert.Equal(last - 1, Longs(clipped.Timesteps)[0]); // linspace(0, last - 1, N + 1) reversed
        Assert.Equal(10, clipped.Timesteps.shape[0]);
    }

    [Fact]
    public void SetTimestepsResetsMultistepState()
    {
        foreach (var c in new[] { "scheduler_dpmpp_2m", "scheduler_pndm", "scheduler_euler" })
        {
            var s = SchedulerFactory.Load(Golden.Case(c));
            Tensor Run()
            {
                s.SetTimesteps(10);
                var x = Golden.Inputs(c)["initial_latent"] * s.InitNoiseSigma;
                for (int i = 0; i < s.Timesteps.shape[0]; i++)
                {
                    var t = s.Timesteps[i];
                    x = s.Step(SchedulerCase.FakeModel(s.ScaleModelInput(x, t), t), t, x).PrevSample;
                }
                return x;
            }
            var first = Run();
            Assert.True(first.eq(Run()).all().item<bool>(), c);
            Golden.AssertClose(Golden.Outputs(c)["final_sample"], first, 1e-5, 0, c);
        }
    }

    [Theory]
    [InlineData("scheduler_dpmpp_2m")]
    [InlineData("scheduler_pndm")]
    [InlineData("scheduler_euler_ancestral")]
    public void StateSurvivesTheCallersDisposeScopes(string c)
    {
        // Pipelines wrap each step in a dispose scope; the scheduler's schedule and history must outlive them.
        var s = SchedulerFactory.Load(Golden.Case(c));
        var inputs = Golden.Inputs(c);
        using (NewDisposeScope()) s.SetTimesteps(10);
        var x = inputs["initial_latent"] * s.InitNoiseSigma;
        for (int i = 0; i < s.Timesteps.shape[0]; i++)
        {
            using var scope = NewDisposeScope();
            var t = s.Timesteps[i];
            inputs.TryGetValue($"step.{i}.variance_noise", out var noise);
            x = s.Step(SchedulerCase.FakeModel(s.ScaleModelInput(x, t), t), t, x, noise: noise).PrevSample.MoveToOuterDisposeScope();
        }
        Golden.AssertClose(Golden.Outputs(c)["final_sample"], x, 1e-5, 0, c);
    }

    [Fact]
    public void EulerAdvancesTheGeneratorButIgnoresItsNoiseWithoutChurn()
    {
        var s = SchedulerFactory.Load(Golden.Case("scheduler_euler"));
        s.SetTimesteps(10);
        var x = Golden.Inputs("scheduler_euler")["initial_latent"] * s.InitNoiseSigma;
        var t = s.Timesteps[0];
        var eps = SchedulerCase.FakeModel(s.ScaleModelInput(x, t), t);
        var gen = manual_seed(0);
        gen.manual_seed(123);
        var withGen = s.Step(eps, t, x, generator: gen).PrevSample;
        Assert.True(Golden.Outputs("scheduler_euler")["step.0.prev_sample"].eq(withGen).all().item<bool>());
        // One randn of the model output's shape was consumed.
        var reference = new Generator(123);
        _ = randn(eps.shape, generator: reference);
        Assert.True(randn(4, generator: reference).eq(randn(4, generator: gen)).all().item<bool>());
    }

    [Fact]
    public void StochasticSchedulersUseTheGeneratorWhenNoNoiseIsGiven()
    {
        var s = SchedulerFactory.Load(Golden.Case("scheduler_ddpm"));
        s.SetTimesteps(10);
        var x = Golden.Inputs("scheduler_ddpm")["initial_latent"];
        var t = s.Timesteps[0];
        var eps = SchedulerCase.FakeModel(x, t);
        var a = s.Step(eps, t, x, generator: new Generator(5)).PrevSample;
        var noise = randn(x.shape, generator: new Generator(5));
        var b = s.Step(eps, t, x, noise: noise).PrevSample;
        Assert.True(a.eq(b).all().item<bool>());

        var ddim = (DdimScheduler)SchedulerFactory.Load(Golden.Case("scheduler_ddim"));
        ddim.SetTimesteps(10);
        ddim.Eta = 1.0;
        var d1 = ddim.Step(eps, t, x, noise: zeros_like(x)).PrevSample;
        var d2 = ddim.Step(eps, t, x, noise: noise).PrevSample;
        Assert.False(d1.eq(d2).all().item<bool>());
        ddim.Eta = 0; // deterministic again: the noise is ignored
        var golden = Golden.Outputs("scheduler_ddim");
        Assert.True(ddim.Step(golden["step.0.model_output"], t, x, noise: noise).PrevSample.eq(golden["step.0.prev_sample"]).all().item<bool>());
    }
}
