using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// What a conformance case runner returns: the reference tensors (from outputs.safetensors or an
/// equivalent) and the tensors our port computed from the case's inputs, under the same names.
/// Every expected name must have an actual; <see cref="ConformanceCheck"/> compares them.
/// </summary>
public sealed record CaseTensors(Dictionary<string, Tensor> Expected, Dictionary<string, Tensor> Actual);
