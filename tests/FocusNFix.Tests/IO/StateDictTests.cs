using FocusNFix;
using FocusNFix.IO;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.IO;

public class StateDictTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-sd-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void LoadFileCopiesEveryWeightAndRefusesAFileThatDoesNotMatchBeforeChangingAnything()
    {
        var model = nn.Linear(3, 2);
        var good = Path.Combine(_dir, "good.safetensors");
        var weight = arange(6f).reshape(2, 3);
        Safetensors.Save(good, new Dictionary<string, Tensor> { ["weight"] = weight, ["bias"] = tensor(new[] { 5f, 6f }), ["position_ids"] = arange(3L) });
        StateDict.LoadFile(model, good);
        Assert.True(model.weight!.eq(weight).all().item<bool>());
        Assert.Equal(new[] { 5f, 6f }, model.bias!.data<float>().ToArray());

        var bad = Path.Combine(_dir, "bad.safetensors");
        Safetensors.Save(bad, new Dictionary<string, Tensor> { ["weight"] = zeros(2, 4) });
        var e = Assert.Throws<InvalidInputException>(() => StateDict.LoadFile(model, bad));
        Assert.Contains(bad, e.Message);
        Assert.Contains("missing keys (1): bias", e.Message);
        Assert.Contains("weight: checkpoint [2, 4], model [2, 3]", e.Message);
        // Checked from the header before any copy: the model keeps the good file's weights.
        Assert.True(model.weight!.eq(weight).all().item<bool>());
    }
}
