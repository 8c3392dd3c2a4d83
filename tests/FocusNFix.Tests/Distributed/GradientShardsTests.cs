using FocusNFix.Distributed;
using FocusNFix.Training;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Distributed;

/// <summary>
/// train.gradient_shards: the shards' gradients are added in shard order on every process, so which process computed
/// which shard does not change a bit of the sum; and the settings that cannot be honoured are refused by name.
/// </summary>
public class GradientShardsTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("fnf-shards-").FullName;
    public void Dispose() => Directory.Delete(_tmp, true);

    // Per shard, the gradient of each of three parameters (the third is never used: it has no gradient). Magnitudes
    // spread over six decades, so the order of the float32 additions shows in the last bits.
    static float[][] ShardGradient(int shard)
    {
        using var g = new Generator((ulong)(100 + shard));
        using var a = randn(new long[] { 5, 3 }, generator: g) * Math.Pow(10, -shard);
        using var b = randn(new long[] { 7 }, generator: g) * Math.Pow(10, shard - 3);
        return new[] { a.data<float>().ToArray(), b.data<float>().ToArray() };
    }

    static List<Parameter> Parameters() => new()
    {
        new Parameter(zeros(5, 3)), new Parameter(zeros(7)), new Parameter(zeros(2)),
    };

    // Leaves exactly shard's gradient in the parameters' .grad, as a shard's backward from zeroed gradients does.
    static void Backward(IReadOnlyList<Parameter> ps, int shard)
    {
        foreach (var p in ps) { using var g = p.grad; g?.zero_(); }
        var grads = ShardGradient(shard);
        using var scope = NewDisposeScope();
        var loss = (ps[0] * tensor(grads[0]).view(5, 3)).sum() + (ps[1] * tensor(grads[1])).sum();
        loss.backward();
    }

    static float[][] Computed(IProcessGroup group, int shards)
    {
        var ps = Parameters();
        var sharded = new ShardedGradients(ps, shards, inShardOrder: true);
        var (first, count) = DataShare.Range(shards, group.Rank, group.Size);
        for (int s = first; s < first + count; s++)
        {
            Backward(ps, s);
            sharded.Keep(s);
        }
        sharded.SumInto(group);
        Assert.Null(ps[2].grad);
        return ps.Take(2).Select(p => p.grad!.data<float>().ToArray()).ToArray();
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public async Task OneProcessAndTwoGetTheShardsSumInShardOrderBitForBit(int shards)
    {
        // ((g0 + g1) + g2) + ..., in float32.
        var expected = ShardGradient(0);
        for (int s = 1; s < shards; s++)
        {
            var g = ShardGradient(s);
            for (int p = 0; p < 2; p++)
                for (int k = 0; k < g[p].Length; k++) expected[p][k] += g[p][k];
        }
        if (shards == 4)
        {
            // The test can tell: each member adding its own two shards first would round differently.
            var (g0, g1, g2, g3) = (ShardGradient(0), ShardGradient(1), ShardGradient(2), ShardGradient(3));
            Assert.Contains(Enumerable.Range(0, 2).SelectMany(p => Enumerable.Range(0, g0[p].Length).Select(k => (p, k))),
                e => (g0[e.p][e.k] + g1[e.p][e.k]) + (g2[e.p][e.k] + g3[e.p][e.k]) != expected[e.p][e.k]);
        }
        var one = Computed(SingleProcess.Instance, shards);
        var pair = new ThreadPair();
        var ranks = Enumerable.Range(0, 2).Select(r => Task.Run(() => Computed(pair.Member(r), shards))).ToArray();
        var both = await Task.WhenAll(ranks).WaitAsync(TimeSpan.FromMinutes(1));
        foreach (var got in new[] { one, both[0], both[1] })
            for (int p = 0; p < 2; p++)
                Assert.Equal(expected[p].Select(BitConverter.SingleToInt32Bits), got[p].Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void ShardsThatDoNotDivideTheBatchOrTheProcessesAreRefusedByName()
    {
        var c = new TrainingConfig { OutputDir = Path.Combine(_tmp, "run"), Train = new TrainLoopConfig { BatchSize = 4, GradientShards = 3 } };
        var path = Path.Combine(_tmp, "c.json");
        File.WriteAllText(path, c.ToJson());
        var e = Assert.Throws<InvalidInputException>(() => TrainingConfig.Load(path));
        Assert.Equal($"{path}: train.gradient_shards = 3: expected a divisor of train.batch_size (4): every shard holds the same number of images (or null: one shard per process)", e.Message);
        c.Train.GradientShards = 0;
        File.WriteAllText(path, c.ToJson());
        Assert.Contains("train.gradient_shards = 0: expected a divisor", Assert.Throws<InvalidInputException>(() => TrainingConfig.Load(path)).Message);
        // One shard cannot be shared by two processes: refused before the run folder is touched.
        c.Train.GradientShards = 1;
        e = Assert.Throws<InvalidInputException>(() => new FocusNFixTrainer(c, group: new ThreadPair().Member(0)));
        Assert.Equal("train.gradient_shards = 1: expected a multiple of the 2 MPI processes (each computes an equal number of the shards)", e.Message);
        Assert.False(Directory.Exists(c.OutputDir));
    }

    /// <summary>Two members of a job as two threads of this process: the all-reduce adds the two buffers element by element.</summary>
    sealed class ThreadPair
    {
        readonly Barrier _barrier = new(2);
        readonly float[]?[] _buffers = new float[]?[2];

        public IProcessGroup Member(int rank) => new Group(this, rank);

        sealed class Group(ThreadPair pair, int rank) : IProcessGroup
        {
            public int Rank => rank;
            public int Size => 2;
            public void AllReduceSum(float[] values)
            {
                pair._buffers[rank] = values;
                pair._barrier.SignalAndWait();
                var other = pair._buffers[1 - rank]!;
                var sum = values.Select((v, i) => v + other[i]).ToArray();
                pair._barrier.SignalAndWait();
                sum.CopyTo(values, 0);
            }
            public void AllReduceSum(double[] values) => throw new NotSupportedException();
            public void Broadcast(float[] values, int root) => throw new NotSupportedException();
            public void Broadcast(long[] values, int root) => throw new NotSupportedException();
            public void Barrier() => pair._barrier.SignalAndWait();
            public void Abort(int exitCode) => throw new NotSupportedException();
        }
    }
}
