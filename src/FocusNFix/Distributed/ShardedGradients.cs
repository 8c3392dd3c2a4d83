using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Distributed;

/// <summary>
/// The gradient of a batch computed as a fixed number of shards, each backpropagated on its own from zeroed
/// gradients, and added up over the processes that computed them.
/// <para>In shard order (train.gradient_shards set): the sum is ((g0 + g1) + g2) + ..., the same float32 additions on
/// every process whichever process computed which shard, so one process and N processes get the same sum bit for bit.
/// (Plain accumulation into <c>.grad</c> does not: each checkpointed UNet call of the gradient window adds its
/// contribution as it is recomputed, so one process adding four images' contributions one by one rounds differently
/// from two processes adding two sums; AdamW then turns those last-bit differences of near-zero entries into lr-sized
/// moves.) The exchange is an all-gather done as an all-reduce: each process fills its own shards' slots and leaves
/// -0 in the others, and x + (-0) is x exactly, in any order of any MPI reduction. It carries one LoRA-sized float32
/// buffer per shard, and every process holds them all on the host.</para>
/// <para>Otherwise (one shard per process, the default): each process adds its shards into one buffer and one
/// all-reduce of LoRA size adds the processes' sums, in whatever order MPI adds them, so the rounding depends on the
/// process count.</para>
/// </summary>
public sealed class ShardedGradients
{
    readonly IReadOnlyList<TorchSharp.Modules.Parameter> _parameters;
    readonly long[] _sizes;
    readonly long _length;
    readonly float[] _slots;
    readonly int _slotCount;

    public int Shards { get; }
    public bool InShardOrder { get; }

    public ShardedGradients(IReadOnlyList<TorchSharp.Modules.Parameter> parameters, int shards, bool inShardOrder)
    {
        if (shards < 1) throw new ArgumentOutOfRangeException(nameof(shards), $"{shards} shards");
        _parameters = parameters;
        Shards = shards;
        InShardOrder = inShardOrder;
        _slotCount = inShardOrder ? shards : 1;
        _sizes = parameters.Select(p => p.numel()).ToArray();
        _length = _sizes.Sum();
        if (_length * _slotCount > Array.MaxLength)
            throw new InvalidInputException($"train.gradient_shards = {shards}: {shards} gradient buffers of {_length} values exceed one host array; expected fewer shards");
        _slots = new float[_length * _slotCount];
        Array.Fill(_slots, -0.0f);
    }

    /// <summary>Adds the parameters' current gradients (one shard's, computed from zero) to shard <paramref name="shard"/>'s slot; a parameter without a gradient adds nothing.</summary>
    public void Keep(int shard)
    {
        if (shard < 0 || shard >= Shards) throw new ArgumentOutOfRangeException(nameof(shard), $"shard {shard} of {Shards}");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long offset = (InShardOrder ? shard : 0) * _length;
        for (int i = 0; i < _parameters.Count; i++)
        {
            using var grad = _parameters[i].grad;
            if (grad is not null)
            {
                var values = grad.detach().flatten().to(ScalarType.Float32).cpu().data<float>().ToArray();
                var slot = _slots.AsSpan((int)offset, values.Length);
                for (int k = 0; k < values.Length; k++) slot[k] += values[k];
            }
            offset += _sizes[i];
        }
    }

    /// <summary>
    /// Adds the slots over the processes in one all-reduce (in shard order: gathers each shard's slot from the process
    /// that kept it), then the shards' slots in shard order, and writes the sum into the parameters' gradients (a
    /// parameter without a gradient is left without one: no process reached it). Returns the seconds spent in MPI.
    /// Every process must call it, after keeping exactly its own shards.
    /// </summary>
    public double SumInto(IProcessGroup group)
    {
        var clock = Stopwatch.StartNew();
        group.AllReduceSum(_slots);
        double seconds = group.Size > 1 ? clock.Elapsed.TotalSeconds : 0;
        var sum = new float[_length];
        Array.Copy(_slots, sum, _length);
        for (int s = 1; s < _slotCount; s++)
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
