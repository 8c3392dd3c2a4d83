using FocusNFix.Conformance;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Schedulers;

public class SchedulerGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases => new()
    {
        "scheduler_ddim", "scheduler_ddim_vpred", "scheduler_ddpm", "scheduler_euler", "scheduler_dpmpp_2m",
        "scheduler_dpmpp_2m_karras", "scheduler_pndm", "scheduler_euler_ancestral",
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesGoldenEveryStep(string caseName)
    {
        var result = SchedulerCase.Run(Golden.Case(caseName));
        Assert.Equal(result.Expected.Keys.OrderBy(k => k), result.Actual.Keys.OrderBy(k => k));
        double worst = 0;
        string worstName = "";
        foreach (var (name, expected) in result.Expected.OrderBy(kv => kv.Key))
        {
            var actual = result.Actual[name];
            Assert.Equal(expected.dtype, actual.dtype);
            double err = Golden.AssertClose(expected, actual, 1e-5, 0, $"{caseName}/{name}");
            if (err > worst) (worst, worstName) = (err, name);
        }
        // The schedule itself is reproduced exactly.
        foreach (var name in new[] { "timesteps", "betas", "alphas_cumprod", "sigmas", "init_noise_sigma" })
            if (result.Expected.TryGetValue(name, out var e))
                Assert.True(e.shape.SequenceEqual(result.Actual[name].shape) && e.eq(result.Actual[name]).all().item<bool>(), $"{caseName}/{name} differs: max {(e.to_type(ScalarType.Float64) - result.Actual[name].to_type(ScalarType.Float64)).abs().max().item<double>():E3}");
        output.WriteLine($"{caseName}: max abs error {worst:E3} ({worstName})");
    }
}
