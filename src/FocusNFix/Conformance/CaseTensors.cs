using static TorchSharp.torch;

namespace FocusNFix.Conformance;

/// <summary>
/// What a conformance case runner returns: the reference tensors (from outputs.safetensors or an
/// equivalent) and the tensors our port computed from the case's inputs, under the same names.
/// Every expected name must have an actual; <see cref="ConformanceCheck"/> compares them. Notes are facts about
/// the comparison that a tensor's max error does not show (they go into the report).
/// </summary>
public sealed record CaseTensors(Dictionary<string, Tensor> Expected, Dictionary<string, Tensor> Actual, IReadOnlyList<string>? Notes = null);
