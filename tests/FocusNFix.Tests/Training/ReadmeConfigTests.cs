using System.Text.RegularExpressions;
using FocusNFix.Training;
using Xunit;

namespace FocusNFix.Tests.Training;

public class ReadmeConfigTests
{
    [Fact]
    public void TheReadmesStableDiffusionConfigIsAValidConfig()
    {
        var readme = File.ReadAllText(Path.Combine(Golden.Root, "README.md"));
        int at = readme.IndexOf("A complete config for SD v1.4", StringComparison.Ordinal);
        Assert.True(at >= 0, "README section missing");
        var block = Regex.Match(readme[at..], "```json\\n(.*?)```", RegexOptions.Singleline);
        Assert.True(block.Success, "no JSON block after the heading");
        var path = Path.Combine(Path.GetTempPath(), $"readme-config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, block.Groups[1].Value);
        try
        {
            var c = TrainingConfig.Load(path);
            Assert.Equal(64, c.Lora.Rank);
            Assert.Equal(2, c.Draft.K);
            Assert.Equal("pixel", c.Constraint.Space);
            Assert.Equal("frobenius", c.Constraint.Norm);
            Assert.Equal("safety-checker", c.Rewards[0].Type);
        }
        finally { File.Delete(path); }
    }
}
