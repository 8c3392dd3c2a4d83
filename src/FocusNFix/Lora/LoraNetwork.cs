using System.Text.Json;
using FocusNFix.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Lora;

/// <summary>
/// LoRA on the UNet's attention projections (PEFT semantics): every adapted Linear computes
/// W·x + Scale · (alpha / r) · B·A·x, with A = lora_A [r, in], B = lora_B [out, r], B initialised to zero.
/// The adapters run through <see cref="Attention.ProjectionDelta"/> hooks, so base weights stay untouched and only
/// A and B train; <see cref="Merge"/> folds them into the weights instead (fast inference), <see cref="Unmerge"/>
/// takes them out again.
/// </summary>
/// <remarks>
/// Parameters are created on the UNet's device, in the UNet's dtype when it is float32/float64 and in float32 for
/// half-precision UNets (trainable weights stay in float32, as diffusers' training scripts keep them); the delta is
/// computed in the input's dtype. Hooks chain: a second network attached to the same UNet adds its delta to the
/// first's; detach them in reverse order.
/// </remarks>
public sealed class LoraNetwork : nn.Module
{
    public static readonly string[] ProjectionNames = { "to_q", "to_k", "to_v", "to_out.0" };

    readonly List<LoraAdapter> adapters = new();
    readonly Dictionary<string, LoraAdapter> byPath = new(StringComparer.Ordinal);
    readonly List<(Attention Attn, string Path, Func<string, Tensor, Tensor?>? Previous, Func<string, Tensor, Tensor?> Hook)> hooks = new();
    double scale = 1.0, mergedScale;
    bool disposed;

    public UNet2DConditionModel Unet { get; }
    public LoraConfig Config { get; }
    public bool IsMerged { get; private set; }
    public bool IsAttached => hooks.Count > 0;
    public IReadOnlyList<LoraAdapter> Adapters => adapters;
    /// <summary>Adapted module paths, in the UNet's module order.</summary>
    public IEnumerable<string> Modules => adapters.Select(a => a.ModulePath);

    /// <summary>
    /// Inference scale (diffusers' cross_attention_kwargs["scale"]); 0 switches the adapters off exactly.
    /// Setting it while merged re-merges at the new scale.
    /// </summary>
    public double Scale
    {
        get => scale;
        set
        {
            if (!double.IsFinite(value)) throw new InvalidInputException($"LoRA scale {value}: expected a finite number");
            if (IsMerged && value != mergedScale)
            {
                Unmerge();
                scale = value;
                Merge();
            }
            else scale = value;
        }
    }

    LoraNetwork(UNet2DConditionModel unet, LoraConfig config) : base(nameof(LoraNetwork))
    {
        Unet = unet;
        Config = config;
    }

    /// <summary>
    /// Adds a new LoRA to every attention projection of <paramref name="unet"/> matched by the config's targets
    /// (the VAE is never touched). lora_A is drawn with <paramref name="generator"/> (see <see cref="LoraConfig.InitStd"/>),
    /// lora_B is zero, so the UNet's output is unchanged until training moves B.
    /// </summary>
    public static LoraNetwork Attach(UNet2DConditionModel unet, LoraConfig config, Generator? generator = null)
    {
        config.Validate();
        var projections = Projections(unet);
        foreach (var t in config.TargetModules)
            if (!projections.Keys.Any(p => LoraConfig.Matches(p, t)))
                throw new InvalidInputException($"LoRA target '{t}' matches no attention projection of the UNet " +
                    $"(adaptable: {string.Join(", ", ProjectionNames)}, optionally with a path prefix such as attn2.to_k)");
        var (device, dtype) = ParamPlacement(unet);
        var net = new LoraNetwork(unet, config);
        foreach (var (path, (_, _, linear)) in projections)
        {
            if (!config.TargetModules.Any(t => LoraConfig.Matches(path, t))) continue;
            long inF = linear.weight!.shape[1], outF = linear.weight.shape[0];
            using var a0 = config.InitStd is double std
                ? randn(new long[] { config.Rank, inF }, generator: generator) * std
                // PEFT: kaiming_uniform_(a=√5) gives bound = gain·√(3/fan_in) with gain = √(2/(1+5)), i.e. 1/√fan_in.
                : (rand(new long[] { config.Rank, inF }, generator: generator) * 2 - 1) / Math.Sqrt(inF);
            net.AddAdapter(path, linear, a0.to(dtype, device), zeros(new long[] { outF, config.Rank }, dtype, device), config.Alpha);
        }
        net.Install(projections);
        return net;
    }

    /// <summary>
    /// Loads a LoRA file in any of the four conventions (<see cref="LoraFormat"/>) onto <paramref name="unet"/> through
    /// hooks. Every layer must be an attention projection of this UNet with matching shapes; otherwise the error names
    /// the layer. Rank and alpha come from the file (per layer). A folder stands for its LoRA file (<see cref="RunFolderLora.ResolveFile"/>).
    /// </summary>
    public static LoraNetwork Load(UNet2DConditionModel unet, string path, double scale = 1.0)
    {
        if (!double.IsFinite(scale)) throw new InvalidInputException($"LoRA scale = {scale}: expected a finite number");
        path = RunFolderLora.ResolveFile(path);
        var projections = Projections(unet);
        var contents = ReadFor(unet, projections, path);
        var config = DeriveConfig(contents, projections.Keys);
        var (device, dtype) = ParamPlacement(unet);
        var net = new LoraNetwork(unet, config);
        var order = projections.Keys.Select((k, i) => (k, i)).ToDictionary(x => x.k, x => x.i);
        foreach (var l in contents.Layers.OrderBy(l => order[l.Module]))
            net.AddAdapter(l.Module, projections[l.Module].Linear, l.Down.to(dtype, device, copy: true), l.Up.to(dtype, device, copy: true), l.Alpha);
        foreach (var l in contents.Layers) { l.Down.Dispose(); l.Up.Dispose(); }
        net.Scale = scale;
        net.Install(projections);
        return net;
    }

    /// <summary>
    /// Opens and validates a LoRA for <paramref name="unet"/> exactly as <see cref="Load"/> does, without attaching it: for
    /// callers that must refuse a bad file before they start work (fnf eval checks every LoRA before it samples).
    /// </summary>
    public static void Check(UNet2DConditionModel unet, string path)
    {
        path = RunFolderLora.ResolveFile(path);
        var contents = ReadFor(unet, Projections(unet), path);
        foreach (var l in contents.Layers) { l.Down.Dispose(); l.Up.Dispose(); }
    }

    /// <summary>The file's layers, each an attention projection of this UNet with matching shapes (else the error names the layer).</summary>
    static LoraFileContents ReadFor(UNet2DConditionModel unet, Dictionary<string, (Attention Attn, string Name, Linear Linear)> projections, string path)
    {
        var contents = LoraFile.Read(path, unet.named_modules().Select(m => m.name));
        try
        {
            foreach (var l in contents.Layers)
            {
                if (!projections.TryGetValue(l.Module, out var p))
                    throw new InvalidInputException($"{path}: layer '{l.Module}' is not an attention projection ({string.Join(", ", ProjectionNames)}); only those can be adapted");
                var w = p.Linear.weight!;
                if (l.Down.shape[1] != w.shape[1] || l.Up.shape[0] != w.shape[0])
                    throw new InvalidInputException($"{path}: layer '{l.Module}' is [{w.shape[0]}x{w.shape[1]}] in this UNet but the LoRA's down is " +
                        $"[{string.Join(",", l.Down.shape)}] and up [{string.Join(",", l.Up.shape)}] (the LoRA was made for a different model)");
            }
            return contents;
        }
        catch
        {
            foreach (var l in contents.Layers) { l.Down.Dispose(); l.Up.Dispose(); }
            throw;
        }
    }

    static LoraConfig DeriveConfig(LoraFileContents contents, IEnumerable<string> projectionPaths)
    {
        var modules = contents.Layers.Select(l => l.Module).ToHashSet();
        var all = projectionPaths.ToList();
        bool Covers(IEnumerable<string> targets) => all.Where(p => targets.Any(t => LoraConfig.Matches(p, t))).ToHashSet().SetEquals(modules);
        string[]? targets = null;
        if (contents.Metadata.TryGetValue(LoraFile.TargetsKey, out var json))
        {
            try { targets = JsonSerializer.Deserialize<string[]>(json); } catch (JsonException) { }
            if (targets != null && !Covers(targets)) targets = null;
        }
        if (targets == null)
        {
            var names = ProjectionNames.Where(n => modules.Any(m => LoraConfig.Matches(m, n))).ToArray();
            targets = Covers(names) ? names : modules.OrderBy(m => m, StringComparer.Ordinal).ToArray();
        }
        var first = contents.Layers[0];
        return new LoraConfig { Rank = first.Rank, Alpha = first.Alpha, TargetModules = targets };
    }

    /// <summary>Every attention projection of the UNet by module path, in module order.</summary>
    static Dictionary<string, (Attention Attn, string Name, Linear Linear)> Projections(UNet2DConditionModel unet)
    {
        var result = new Dictionary<string, (Attention, string, Linear)>(StringComparer.Ordinal);
        foreach (var (name, module) in unet.named_modules())
            if (module is Attention attn)
                foreach (var (proj, lin) in new[] { ("to_q", attn.to_q), ("to_k", attn.to_k), ("to_v", attn.to_v), ("to_out.0", attn.to_out[0]) })
                    result[$"{name}.{proj}"] = (attn, proj, lin);
        return result;
    }

    static (Device Device, ScalarType DType) ParamPlacement(UNet2DConditionModel unet)
    {
        var p = unet.parameters().First();
        var dtype = p.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        return (p.device, dtype);
    }

    void AddAdapter(string path, Linear target, Tensor a, Tensor b, double alpha)
    {
        var adapter = new LoraAdapter(path, target, a, b, alpha);
        adapters.Add(adapter);
        byPath.Add(path, adapter);
        register_module(path.Replace('.', '_'), adapter);
    }

    void Install(Dictionary<string, (Attention Attn, string Name, Linear Linear)> projections)
    {
        foreach (var group in adapters.GroupBy(a => projections[a.ModulePath].Attn))
        {
            var attn = group.Key;
            var map = group.ToDictionary(a => projections[a.ModulePath].Name, a => a, StringComparer.Ordinal);
            var previous = attn.ProjectionDelta;
            Func<string, Tensor, Tensor?> hook = (name, x) =>
            {
                var before = previous?.Invoke(name, x);
                // Merged weights already contain the update; scale 0 must leave the output bit-identical.
                if (disposed || IsMerged || scale == 0 || !map.TryGetValue(name, out var adapter)) return before;
                var own = adapter.Delta(x, scale);
                return before is null ? own : before + own;
            };
            attn.ProjectionDelta = hook;
            hooks.Add((attn, group.First().ModulePath[..group.First().ModulePath.LastIndexOf(".to_", StringComparison.Ordinal)], previous, hook));
        }
    }

    /// <summary>
    /// Removes the hooks. A merged network stays baked into the weights (PEFT's merge_and_unload); call
    /// <see cref="Unmerge"/> first to get the base model back.
    /// </summary>
    public void Detach()
    {
        foreach (var (attn, path, _, hook) in hooks)
            if (!ReferenceEquals(attn.ProjectionDelta, hook))
                throw new InvalidOperationException($"another adapter was attached to '{path}' after this LoRA: detach that one first");
        foreach (var (attn, _, previous, _) in hooks) attn.ProjectionDelta = previous;
        hooks.Clear();
    }

    /// <summary>Adds Scale · (alpha/r) · B·A to each adapted weight; the hooks then contribute nothing.</summary>
    public void Merge()
    {
        if (IsMerged) throw new InvalidOperationException("the LoRA is already merged");
        foreach (var a in adapters) LoraFile.MergeInto(a.Target.weight!, a.ToLayer(), scale);
        mergedScale = scale;
        IsMerged = true;
    }

    /// <summary>Subtracts what <see cref="Merge"/> added (at the scale it used), re-enabling the hooks.</summary>
    public void Unmerge()
    {
        if (!IsMerged) throw new InvalidOperationException("the LoRA is not merged");
        foreach (var a in adapters) LoraFile.MergeInto(a.Target.weight!, a.ToLayer(), -mergedScale);
        IsMerged = false;
    }

    /// <summary>lora_A and lora_B of every adapter, in module order (give these to the optimiser).</summary>
    public IEnumerable<Parameter> TrainableParameters() => adapters.SelectMany(a => new[] { a.lora_A, a.lora_B });

    /// <summary>Turns off gradients for every UNet parameter, so only LoRA parameters train.</summary>
    public static void FreezeBase(UNet2DConditionModel unet)
    {
        foreach (var p in unet.parameters()) p.requires_grad = false;
    }

    /// <summary>The weights as file layers (detached views of the parameters).</summary>
    public List<LoraLayer> Layers() => adapters.Select(a => a.ToLayer()).ToList();

    /// <summary>Writes the LoRA in a convention (atomically); the target list goes into the metadata.</summary>
    public void Save(string path, LoraFormat format, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var meta = new Dictionary<string, string> { [LoraFile.TargetsKey] = JsonSerializer.Serialize(Config.TargetModules) };
        if (metadata != null) foreach (var (k, v) in metadata) meta[k] = v;
        var layers = Layers();
        try { LoraFile.Save(path, layers, format, meta); }
        finally { foreach (var l in layers) { l.Down.Dispose(); l.Up.Dispose(); } }
    }

    /// <summary><c>unet.&lt;module&gt;.lora_A.weight</c> / <c>lora_B.weight</c>, metadata format pt plus rank, alpha and targets.</summary>
    public void SavePeft(string path) => Save(path, LoraFormat.Peft);

    /// <summary><c>lora_unet_&lt;module with _&gt;.lora_down.weight</c> / <c>.lora_up.weight</c> / <c>.alpha</c> plus ss_network_dim/ss_network_alpha.</summary>
    public void SaveKohya(string path) => Save(path, LoraFormat.Kohya);

    /// <summary>"&lt;module&gt;.lora_A.weight" / "&lt;module&gt;.lora_B.weight" → detached views of the parameters (for training checkpoints).</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var a in adapters)
        {
            d[$"{a.ModulePath}.lora_A.weight"] = a.lora_A.detach();
            d[$"{a.ModulePath}.lora_B.weight"] = a.lora_B.detach();
        }
        return d;
    }

    /// <summary>Copies a <see cref="StateDict"/> back in place (same keys and shapes, strictly), keeping the Parameter objects.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, string source = "LoRA state dict")
    {
        if (IsMerged) throw new InvalidOperationException("unmerge the LoRA before loading new weights into it");
        var expected = StateDict();
        try
        {
            var missing = expected.Keys.Where(k => !state.ContainsKey(k)).ToList();
            var unexpected = state.Keys.Where(k => !expected.ContainsKey(k)).ToList();
            if (missing.Count > 0 || unexpected.Count > 0)
                throw new InvalidInputException($"{source}: does not match this LoRA" +
                    (missing.Count > 0 ? $"; missing: {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? $" (+{missing.Count - 5} more)" : "")}" : "") +
                    (unexpected.Count > 0 ? $"; unexpected: {string.Join(", ", unexpected.Take(5))}{(unexpected.Count > 5 ? $" (+{unexpected.Count - 5} more)" : "")}" : ""));
            foreach (var (k, t) in expected)
                if (!state[k].shape.SequenceEqual(t.shape))
                    throw new InvalidInputException($"{source}: '{k}' has shape [{string.Join(",", state[k].shape)}], expected [{string.Join(",", t.shape)}]");
            using var _ = no_grad();
            foreach (var (k, t) in expected) t.copy_(state[k]);
        }
        finally
        {
            foreach (var t in expected.Values) t.Dispose();
        }
    }

    // The reflective default would adopt the UNet (a field) as a child if this network were registered in a module.
    protected override void RegisterComponents() { }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !disposed)
        {
            // A hook that cannot be removed (another adapter sits on top) turns into a pass-through instead.
            disposed = true;
            try { Detach(); } catch (InvalidOperationException) { }
        }
        base.Dispose(disposing);
    }
}
