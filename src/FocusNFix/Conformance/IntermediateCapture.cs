using FocusNFix.IO;
using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// A case's reference forward-hook outputs (intermediates.safetensors, keys <c>intermediate.&lt;module&gt;</c>) and the
/// matching outputs of our modules, caught through their DebugHook, for localising a mismatch.
/// </summary>
public sealed class IntermediateCapture
{
    readonly Dictionary<string, Tensor> _wanted;
    readonly Dictionary<string, Tensor> _actual;

    public IntermediateCapture(string caseDir, Dictionary<string, Tensor> actual)
    {
        var path = Path.Combine(caseDir, "intermediates.safetensors");
        _wanted = File.Exists(path) ? Safetensors.Load(path) : new Dictionary<string, Tensor>();
        _actual = actual;
    }

    /// <summary>The hook to install: keeps the first output of each module the reference recorded.</summary>
    public Action<string, Tensor> Hook => (name, t) =>
    {
        var key = "intermediate." + name;
        if (_wanted.ContainsKey(key) && !_actual.ContainsKey(key)) _actual[key] = t.detach().clone().DetachFromDisposeScope();
    };

    /// <summary>Adds the reference intermediates our modules produced to the expected tensors (every hook point has a counterpart).</summary>
    public void AddExpected(Dictionary<string, Tensor> expected)
    {
        foreach (var (key, t) in _wanted)
        {
            if (_actual.ContainsKey(key)) expected[key] = t;
            else t.Dispose();
        }
    }
}
