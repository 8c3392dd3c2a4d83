using FocusNFix.Distributed;
using FocusNFix.IO;
using FocusNFix.Masks;
using FocusNFix.Pipelines;
using FocusNFix.Rewards;
using static TorchSharp.torch;

namespace FocusNFix.Training;

/// <summary>One (prompt, seed) pair of the training pool.</summary>
public sealed record PoolEntry(int PromptIndex, string Prompt, long Seed);

/// <summary>
/// What the frozen model made for a pool entry: noise x_T, its model-space result (final latents z0, or for ReFL the x0
/// prediction at step T-K), the image I0 decoded from it, its heatmap and mask M(I0).
/// </summary>
public sealed record CachedOriginal(Tensor Noise, Tensor Latents, Tensor Image, Tensor Heatmap, Tensor Mask);

/// <summary>
/// I0 and M(I0) depend only on (prompt, seed), never on the trained weights, so they are computed once and reused
/// every epoch: in memory, or on disk (one safetensors file per entry) for large pools. A disk cache carries the pool
/// and a key (what the entries depend on: model, sampling, heatmap, mask...) in manifest.json, written last, so a
/// run with the same pool and key reuses it (the demo's three methods sample their originals once) and a half-written cache is never reused.
/// In a process group each member samples its contiguous share of the pool; a memory cache is then completed by
/// broadcasting every share to every member, a disk cache (on a folder all members see) by the files themselves.
/// </summary>
public sealed class OriginalCache : IDisposable
{
    public const string ManifestName = "manifest.json";
    /// <summary>Held (an exclusive lock on this file) by the process building a disk cache.</summary>
    public const string LockName = "build.lock";
    readonly Dictionary<int, CachedOriginal> _memory = new();
    readonly string? _folder;
    public IReadOnlyList<PoolEntry> Pool { get; }
    /// <summary>Every mask reads as all zeros (the global-constraint baseline); the stored masks stay as they are.</summary>
    public bool ZeroMasks { get; }
    /// <summary>True when a disk cache with the same key was found and nothing was sampled.</summary>
    public bool Reused { get; private init; }

    OriginalCache(IReadOnlyList<PoolEntry> pool, string? folder, bool zeroMasks) { Pool = pool; _folder = folder; ZeroMasks = zeroMasks; }

    /// <param name="folder">null keeps everything in memory; otherwise entries are written there (or reused from there
    /// when its manifest carries the same <paramref name="key"/>).</param>
    /// <param name="zeroMasks">true for the global-constraint baseline (keep the whole image).</param>
    /// <param name="key">what the entries depend on besides the pool (the trainer's: model, sampling, dtype, device,
    /// heatmap, mask, rewards), as text; a disk cache is reused only when key and pool match exactly; null never reuses one.</param>
    /// <param name="group">the processes sharing the work (null: this one alone); every member calls Build alike.</param>
    public static OriginalCache Build(PoolSampler sampler, IReadOnlyList<PoolEntry> pool,
        IHeatmapSource heatmap, MaskOptions maskOptions, bool zeroMasks, string? folder, int batchSize = 16, Action<int, int>? progress = null,
        string? key = null, IProcessGroup? group = null)
    {
        group ??= SingleProcess.Instance;
        var manifest = ManifestText(pool, key);
        // Another process may be building the same folder (the demo's parallel jobs, two runs with one cache_dir):
        // it finishes first, and this one then finds the cache complete instead of sampling it again beside it.
        using var buildLock = folder != null && group.Rank == 0 ? FolderLock.Acquire(folder, LockName) : null;
        // Rank 0 decides for all, so no member reuses what another is about to rewrite.
        var reuse = new long[] { group.Rank == 0 && folder != null && key != null && IsComplete(folder, pool, manifest) ? 1 : 0 };
        group.Broadcast(reuse, 0);
        if (reuse[0] == 1)
        {
            progress?.Invoke(pool.Count, pool.Count);
            return new OriginalCache(pool, folder, zeroMasks) { Reused = true };
        }
        var cache = new OriginalCache(pool, folder, zeroMasks);
        if (folder != null)
        {
            Directory.CreateDirectory(folder);
            if (group.Rank == 0) File.Delete(Path.Combine(folder, ManifestName));
        }
        var (shareStart, shareCount) = DataShare.Range(pool.Count, group.Rank, group.Size);
        using var noGrad = no_grad();
        for (int start = shareStart; start < shareStart + shareCount; start += batchSize)
        {
            using var gcPause = TorchGcPause.Begin();
            using var scope = NewDisposeScope();
            var chunk = Enumerable.Range(start, Math.Min(batchSize, shareStart + shareCount - start)).ToList();
            var entries = chunk.Select(i => pool[i]).ToList();
            // The training path's own sampling without gradients: I0 is what a zero LoRA reproduces.
            var noise = sampler.Noise(entries);
            var latents = sampler.Sample(entries, noise, withGrad: false);
            var images = sampler.ToImages(latents);
            Tensor heat;
            using (no_grad()) heat = heatmap.Compute(images, entries.Select(e => new HeatmapKey(e.Prompt, e.PromptIndex, e.Seed)).ToList()).detach();
            if (!Placement.Same(heat.device, sampler.Pipeline.Device))
                throw new InvalidOperationException($"the heatmap source {heatmap.GetType().Name} returned its map on {heat.device}, not on the images' device {sampler.Pipeline.Device}");
            var mask = HeatmapMask.FromHeatmap(heat, maskOptions);
            for (int k = 0; k < chunk.Count; k++)
            {
                var entry = new CachedOriginal(noise[k].clone(), latents[k].clone(), images[k].clone(), heat[k].clone(), mask[k].clone());
                cache.Store(chunk[k], entry);
            }
            progress?.Invoke(start + chunk.Count - shareStart, shareCount);
        }
        if (group.Size > 1 && folder == null) cache.ShareEntries(group, sampler.Pipeline.Device);
        // Every member's files are complete before the manifest says so.
        group.Barrier();
        if (folder != null && group.Rank == 0) AtomicFile.WriteAllText(Path.Combine(folder, ManifestName), manifest);
        return cache;
    }

    static Tensor MoveTo(Tensor x, Device device)
    {
        var moved = x.to(device).DetachFromDisposeScope();
        x.Dispose();
        return moved;
    }

    /// <summary>Completes a memory cache in a group: each entry goes from the member that sampled it to all others.</summary>
    void ShareEntries(IProcessGroup group, Device device)
    {
        using var gcPause = TorchGcPause.Begin();
        for (int i = 0; i < Pool.Count; i++)
        {
            int owner = DataShare.Owner(i, Pool.Count, group.Size);
            var mine = owner == group.Rank ? _memory[i] : null;
            var t = TensorCollectives.Share(group, mine is null ? null : new[] { mine.Noise, mine.Latents, mine.Image, mine.Heatmap, mine.Mask }, owner);
            if (mine is null)
            {
                var on = t.Select(x => Placement.Same(x.device, device) ? x : MoveTo(x, device)).ToArray();
                _memory[i] = new CachedOriginal(on[0], on[1], on[2], on[3], on[4]);
            }
            else foreach (var x in t) x.Dispose();
        }
    }

    static string ManifestText(IReadOnlyList<PoolEntry> pool, string? key) => System.Text.Json.JsonSerializer.Serialize(new
    {
        key,
        pool = pool.Select(e => new { prompt_index = e.PromptIndex, prompt = e.Prompt, seed = e.Seed }),
    }, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n";

    static bool IsComplete(string folder, IReadOnlyList<PoolEntry> pool, string manifest)
    {
        var path = Path.Combine(folder, ManifestName);
        return File.Exists(path) && File.ReadAllText(path) == manifest
            && Enumerable.Range(0, pool.Count).All(i => File.Exists(Path.Combine(folder, $"{i}.safetensors")));
    }

    void Store(int index, CachedOriginal e)
    {
        if (_folder == null)
        {
            foreach (var t in new[] { e.Noise, e.Latents, e.Image, e.Heatmap, e.Mask }) t.DetachFromDisposeScope();
            _memory[index] = e;
            return;
        }
        Safetensors.Save(Path.Combine(_folder, $"{index}.safetensors"), new Dictionary<string, Tensor>
        {
            ["noise"] = e.Noise, ["latents"] = e.Latents, ["image"] = e.Image, ["heatmap"] = e.Heatmap, ["mask"] = e.Mask,
        });
    }

    /// <summary>The cached tensors of one entry (from disk: fresh tensors the caller's dispose scope owns).</summary>
    public CachedOriginal Get(int index)
    {
        var e = Stored(index);
        return ZeroMasks ? e with { Mask = zeros_like(e.Mask) } : e;
    }

    /// <summary>Whether the original's heatmap mask is non-empty: the pair shows the problem, whatever mask the objective trains with.</summary>
    public bool IsProblematic(int index)
    {
        using var scope = NewDisposeScope();
        return Stored(index).Mask.sum().item<float>() > 0;
    }

    CachedOriginal Stored(int index)
    {
        if (_folder == null) return _memory[index];
        var d = Safetensors.Load(Path.Combine(_folder, $"{index}.safetensors"));
        return new CachedOriginal(d["noise"], d["latents"], d["image"], d["heatmap"], d["mask"]);
    }

    /// <summary>Stacks the entries of a batch: (noise, latents, images, heatmaps, masks), each [B,...].</summary>
    public (Tensor Noise, Tensor Latents, Tensor Images, Tensor Heatmaps, Tensor Masks) Batch(IReadOnlyList<int> indices, Device device)
    {
        var items = indices.Select(Get).ToList();
        Tensor S(Func<CachedOriginal, Tensor> f) => stack(items.Select(f).ToList()).to(device);
        return (S(e => e.Noise), S(e => e.Latents), S(e => e.Image), S(e => e.Heatmap), S(e => e.Mask));
    }

    public void Dispose()
    {
        foreach (var e in _memory.Values)
            foreach (var t in new[] { e.Noise, e.Latents, e.Image, e.Heatmap, e.Mask }) t.Dispose();
        _memory.Clear();
    }
}
