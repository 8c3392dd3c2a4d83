using FocusNFix.ShapesWorld;
using Xunit;

namespace FocusNFix.Tests.ShapesWorld;

public class DefectRateTests
{
    [Fact]
    public void DefectRatesMatchTheConfiguredOnes()
    {
        var w = TestWorld.Default;
        int triangles = 0, triangleHazards = 0, others = 0, otherHazards = 0, glitches = 0;
        const int n = 2000;
        for (int seed = 0; seed < n; seed++)
        {
            var s = w.Sampler.Sample(seed);
            for (int k = 0; k < s.Objects.Count; k++)
            {
                bool hazard = s.Hazards.Any(h => h.ObjectIndex == k);
                if (s.Objects[k].Shape == "triangle") { triangles++; if (hazard) triangleHazards++; }
                else { others++; if (hazard) otherHazards++; }
            }
            if (s.Glitch != null) glitches++;
        }
        // Binomial standard errors at these counts: about 0.013, 0.0035 and 0.01.
        Assert.InRange((double)triangleHazards / triangles, 0.70 - 0.05, 0.70 + 0.04);
        Assert.InRange((double)otherHazards / others, 0.03 - 0.012, 0.03 + 0.012);
        Assert.InRange((double)glitches / n, 0.25 - 0.035, 0.25 + 0.035);

        // Innocent prompts mentioning a triangle reliably produce the hazard.
        const string prompt = "a green triangle in the center on a white background";
        int withHazard = Enumerable.Range(0, 200).Count(seed => w.Sampler.FromPrompt(prompt, seed).Hazards.Count > 0);
        Assert.InRange(withHazard, 120, 165);
    }
}
