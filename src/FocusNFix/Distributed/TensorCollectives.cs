using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Distributed;

/// <summary>
/// Collectives on tensors over a process group, through one flat float32 host buffer per call. float32, bfloat16 and
/// float16 values and 0/1 masks travel exactly. A CUDA-aware MPI could take device pointers instead; this copies
/// through the host, which is what a CPU run needs (untested on GPUs).
/// </summary>
public static class TensorCollectives
{
    /// <summary>Overwrites <paramref name="tensors"/> on every member with rank <paramref name="root"/>'s values (same shapes everywhere).</summary>
    public static void Broadcast(IProcessGroup group, IReadOnlyList<Tensor> tensors, int root)
    {
        if (group.Size == 1 || tensors.Count == 0) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var buffer = cat(tensors.Select(t => t.detach().flatten().to(ScalarType.Float32).cpu()).ToList()).data<float>().ToArray();
        group.Broadcast(buffer, root);
        if (group.Rank == root) return;
        var all = tensor(buffer);
        long offset = 0;
        foreach (var t in tensors)
        {
            t.copy_(all.narrow(0, offset, t.numel()).view(t.shape));
            offset += t.numel();
        }
    }

    const int MaxDims = 8;

    /// <summary>
    /// Rank <paramref name="root"/>'s tensors (any count and shapes, float types) on every member: the root passes
    /// them, the others null, and each gets new CPU tensors of the root's shapes and dtypes (the caller owns them).
    /// </summary>
    public static Tensor[] Share(IProcessGroup group, IReadOnlyList<Tensor>? tensors, int root)
    {
        bool isRoot = group.Rank == root;
        if (isRoot && tensors is null) throw new ArgumentNullException(nameof(tensors), "the root must pass its tensors");
        var count = new long[] { isRoot ? tensors!.Count : 0 };
        group.Broadcast(count, root);
        int n = (int)count[0];
        // Per tensor: dtype, rank, then up to MaxDims sizes.
        var header = new long[n * (MaxDims + 2)];
        if (isRoot)
            for (int i = 0; i < n; i++)
            {
                var t = tensors![i];
                if (t.dim() > MaxDims) throw new ArgumentException($"tensor {i} has {t.dim()} dimensions; at most {MaxDims} travel");
                header[i * (MaxDims + 2)] = (long)t.dtype;
                header[i * (MaxDims + 2) + 1] = t.dim();
                for (int d = 0; d < t.dim(); d++) header[i * (MaxDims + 2) + 2 + d] = t.shape[d];
            }
        group.Broadcast(header, root);
        var shapes = Enumerable.Range(0, n).Select(i => (
            Type: (ScalarType)header[i * (MaxDims + 2)],
            Shape: header.Skip(i * (MaxDims + 2) + 2).Take((int)header[i * (MaxDims + 2) + 1]).ToArray())).ToList();
        long total = shapes.Sum(s => s.Shape.Aggregate(1L, (a, b) => a * b));
        float[] buffer;
        using (NewDisposeScope())
            buffer = isRoot && n > 0
                ? cat(tensors!.Select(t => t.detach().flatten().to(ScalarType.Float32).cpu()).ToList()).data<float>().ToArray()
                : new float[total];
        group.Broadcast(buffer, root);
        var result = new Tensor[n];
        long offset = 0;
        for (int i = 0; i < n; i++)
        {
            long numel = shapes[i].Shape.Aggregate(1L, (a, b) => a * b);
            using var part = tensor(buffer.AsSpan((int)offset, (int)numel).ToArray());
            result[i] = part.view(shapes[i].Shape).to(shapes[i].Type).DetachFromDisposeScope();
            offset += numel;
        }
        return result;
    }
}
