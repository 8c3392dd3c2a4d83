using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Distributed;

/// <summary>
/// The gradient of a batch computed as a fixed number of shards, each backpropagated on its own from zeroed
/// gradients, and added in shard order: ((g0 + g1) + g2) + ... The same float32 additions run on every process
/// whichever process computed which shard, so one process and N processes get the same sum bit for bit. (Plain
/// accumulation into <c>.grad</c> does not: each checkpointed UNet call of the gradient window adds its contribution
/// as it is recomputed, so one process adding four images' contributions one by one rounds differently from two
/// processes adding two sums; AdamW then turns those last-bit differences of near-zero entries into lr-sized moves.)
/// The exchange is an all-gather done as an all-reduce: each process fills its own shards' slots and leaves -0 in the
/// others, and x + (-0) is x exactly, in any order of any MPI reduction. It carries one LoRA-sized float32 buffer per
/// shard, and every process holds them all on the host.
/// </summary>
public sealed class ShardedGradients
{
    readonly IReadOnlyList<TorchSharp.Modules.Parameter> _parameters;
    readonly long[] _sizes;
    readonly long _length;
    readonly float[] _slots;

    public int Shards { get; }

    public ShardedGradients(IReadOnlyList<TorchSharp.Modules.Parameter> parameters, int shards)
    {
        if (shards < 1) throw new ArgumentOutOfRangeException(nameof(shards), $"{shards} shards");
        _parameters = parameters;
        Shards = shards;
        _sizes = parameters.Select(p => p.numel()).ToArray();
        _length = _sizes.Sum();
        if (_length * shards > Array.MaxLength)
            throw new InvalidInputException($"train.gradient_shards = {shards}: {shards} gradient buffers of {_length} values exceed one host array; expected fewer shards");
        _slots = new float[_length * shards];
        Array.Fill(_slots, -0.0f);
    }

    /// <summary>Copies the parameters' current gradients (one shard's, computed from zero) into shard <paramref name="shard"/>'s slot; a parameter without a gradient contributes zeros.</summary>
    public void Keep(int shard)
    {
        if (shard < 0 || shard >= Shards) throw new ArgumentOutOfRangeException(nameof(shard), $"shard {shard} of {Shards}");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long offset = shard * _length;
        for (int i = 0; i < _parameters.Count; i++)
        {
            using var grad = _parameters[i].grad;
            if (grad is null) Array.Fill(_slots, 0.0f, (int)offset, (int)_sizes[i]);
            else grad.detach().flatten().to(ScalarType.Float32).cpu().data<float>().CopyTo(_slots.AsSpan((int)offset, (int)_sizes[i]));
            offset += _sizes[i];
        }
    }

    /// <summary>
    /// Gathers every shard's slot from the process that kept it, adds the shards in order and writes the sum into the
    /// parameters' gradients (a parameter without a gradient is left without one: no process reached it). Returns the
    /// seconds spent in MPI. Every process must call it, after keeping exactly its own shards.
    /// </summary>
    public double SumInto(IProcessGroup group)
    {
        var clock = Stopwatch.StartNew();
        group.AllReduceSum(_slots);
        double seconds = group.Size > 1 ? clock.Elapsed.TotalSeconds : 0;
        var sum = new float[_length];
        Array.Copy(_slots, sum, _length);
        for (int s = 1; s < Shards; s++)
        {
            var slot = _slots.AsSpan((int)(s * _length), (int)_length);
            for (int k = 0; k < sum.Length; k++) sum[k] += slot[k];
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var all = tensor(sum);
        long at = 0;
        for (int i = 0; i < _parameters.Count; i++)
        {
            using var grad = _parameters[i].grad;
            grad?.copy_(all.narrow(0, at, _sizes[i]).view(grad.shape));
            at += _sizes[i];
        }
        Array.Fill(_slots, -0.0f);
        return seconds;
    }
}
