using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>
/// AdamW (Loshchilov and Hutter; PyTorch's torch.optim.AdamW update, amsgrad off) whose state saves to and loads
/// from safetensors exactly, so a resumed run continues bit for bit. TorchSharp's optimisers have no such export.
/// Scalars are created and disposed explicitly: TorchSharp 0.107 does not keep implicitly converted temporaries alive
/// during native calls.
/// </summary>
public sealed class AdamW : IDisposable
{
    readonly IReadOnlyList<Parameter> _params;
    readonly Tensor[] _m, _v;
    public double LearningRate { get; set; }
    public double Beta1 { get; } = 0.9;
    public double Beta2 { get; } = 0.999;
    public double Eps { get; } = 1e-8;
    public double WeightDecay { get; }
    public long StepCount { get; private set; }

    public AdamW(IEnumerable<Parameter> parameters, double lr, double weightDecay = 0.01)
    {
        _params = parameters.Where(p => p.requires_grad).ToList();
        LearningRate = lr;
        WeightDecay = weightDecay;
        _m = _params.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        _v = _params.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
    }

    public IReadOnlyList<Parameter> Parameters => _params;

    public void ZeroGrad()
    {
        // The .grad wrappers are disposed here, not left to the garbage collector (see TorchGcPause).
        foreach (var p in _params) { using var g = p.grad; g?.zero_(); }
    }

    /// <summary>
    /// Applies one update and returns true, or, when the update would make any parameter or moment non-finite, leaves
    /// parameters, moments and the step count exactly as they were and returns false.
    /// </summary>
    public bool Step()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        long stepCount = StepCount + 1;
        double bc1 = 1 - Math.Pow(Beta1, stepCount), bc2 = 1 - Math.Pow(Beta2, stepCount);
        using var decay = (1 - LearningRate * WeightDecay).ToScalar();
        using var b1 = Beta1.ToScalar();
        using var a1 = (1 - Beta1).ToScalar();
        using var b2 = Beta2.ToScalar();
        using var a2 = (1 - Beta2).ToScalar();
        using var eps = Eps.ToScalar();
        using var sqrtBc2 = Math.Sqrt(bc2).ToScalar();
        using var stepSize = (-LearningRate / bc1).ToScalar();
        // The same operations, in the same order, as PyTorch's in-place AdamW, on copies: the result is committed
        // only if every value is finite.
        var updates = new List<(int Index, Tensor P, Tensor M, Tensor V)>();
        var finite = new List<Tensor>();
        for (int i = 0; i < _params.Count; i++)
        {
            var g = _params[i].grad;
            if (g is null) continue;
            var p = _params[i].detach().clone().mul_(decay);
            var m = _m[i].clone().mul_(b1).add_(g, a1);
            var v = _v[i].clone().mul_(b2).addcmul_(g, g, a2);
            var denom = v.sqrt().div_(sqrtBc2).add_(eps);
            p.addcdiv_(m, denom, stepSize);
            updates.Add((i, p, m, v));
            finite.Add(p.isfinite().all());
            finite.Add(m.isfinite().all());
            finite.Add(v.isfinite().all());
        }
        if (finite.Count > 0 && !stack(finite).all().item<bool>()) return false;
        foreach (var (i, p, m, v) in updates)
        {
            _params[i].copy_(p);
            _m[i].copy_(m);
            _v[i].copy_(v);
        }
        StepCount = stepCount;
        return true;
    }

    public void Dispose()
    {
        foreach (var t in _m.Concat(_v)) t.Dispose();
    }

    /// <summary>State as named tensors: step, and exp_avg / exp_avg_sq per parameter index.</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor> { ["step"] = tensor(StepCount) };
        for (int i = 0; i < _params.Count; i++)
        {
            d[$"state.{i}.exp_avg"] = _m[i];
            d[$"state.{i}.exp_avg_sq"] = _v[i];
        }
        return d;
    }

    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> d, string source)
    {
        if (!d.TryGetValue("step", out var step)) throw new InvalidInputException($"{source}: optimiser state has no 'step'");
        using var _ = no_grad();
        for (int i = 0; i < _params.Count; i++)
        {
            foreach (var (name, dst) in new[] { ("exp_avg", _m[i]), ("exp_avg_sq", _v[i]) })
            {
                if (!d.TryGetValue($"state.{i}.{name}", out var t) || !t.shape.SequenceEqual(dst.shape))
                    throw new InvalidInputException($"{source}: optimiser state 'state.{i}.{name}' is missing or has the wrong shape (the run's LoRA config changed?)");
                dst.copy_(t);
            }
        }
        StepCount = step.item<long>();
    }
}
