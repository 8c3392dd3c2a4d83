using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace FocusNFix;

/// <summary>
/// Process-wide settings for libtorch's native libraries, applied when this library loads, before the first torch call
/// loads libtorch.
/// <para>
/// libtorch runs with its own vector kernels (AVX-512 on this project's AMD EPYC machines). From 2026-12-01 to
/// 2026-12-03 this class held them down (oneDNN at SSE4.1, MKL at SSE4.2, ATen at AVX2): issue 10 had seen NaN and
/// wrong gradients at random (2 to 5 of the 388 tests failed per suite run, NaN gradients in UNet, CLIP, LoRA and
/// checkpointed steps), and with the caps the suite passed. The commit that added the caps also made the training
/// step's GC pause wait for the finalizers its own collection queued (<see cref="TorchGcPause"/>), and the suite
/// had been made serial an hour before it, so which change cured the NaN was never isolated. Measured 2026-12-03 with
/// every cap lifted in the environment (DNNL_MAX_CPU_ISA=ALL, MKL_ENABLE_INSTRUCTIONS=AVX512, ATEN_CPU_CAPABILITY=avx512):
/// the whole suite (801 tests) passed in two runs, the second beside a build, and the gradient, checkpointing,
/// LoRA, CLIP and UNet tests passed three more times beside a busy process (<c>yes &gt; /dev/null</c>), the
/// 1- and 2-thread repeated-gradient tests included. The caps cost 15-40% of the time of an SD-sized UNet
/// (<c>fnf bench --preset sd15 --sizes 256</c>, 2 threads: forward 2.29 s capped, 1.99 s not; LoRA forward+backward
/// 5.26 s against 3.79 s), so they are gone. The trainer's guard still refuses a non-finite step; a user who meets
/// NaN gradients can set those three variables to the old values, and should file the case.
/// </para>
/// <para>
/// OpenMP threads sleep instead of spinning while they wait (OMP_WAIT_POLICY=PASSIVE), so a busy process next to a run
/// costs it a share of the CPU and no more (issue 10). <c>fnf bench --batch 4 --steps 20 --competitors 1</c>, 2 threads,
/// one <c>yes &gt; /dev/null</c> beside it: libgomp's default spinning made the training step (K = 1, 2, 4) 3.3x, 3.7x
/// and 3.8x slower and sampling 3.9x (1.65 s -> 5.37 s per step); sleeping threads took 0.9x-1.2x (2.39 s) and sampling
/// 1.1x (2.33 s). The price on an idle machine: training steps 1.37/1.47/1.86 s -> 1.75/1.87/2.20 s and sampling
/// 1.19 -> 1.35 s (13-28% slower), UNet forward+backward 0.27 -> 0.20 s. GOMP_SPINCOUNT=20000 (a short spin) was no
/// better than the default under load. A second run with this library's defaults: training steps 1.84/2.03/2.33 s
/// alone, 2.59/3.18/3.25 s loaded (1.4-1.6x), sampling 1.40 -> 2.14 s (1.5x). Set OMP_WAIT_POLICY=ACTIVE on a
/// machine of your own.
/// </para>
/// .NET's Environment.SetEnvironmentVariable does not reach native getenv on Unix, hence libc's setenv.
/// <para>
/// glibc's malloc serves every allocation under 128 MiB from its heap (mallopt M_MMAP_THRESHOLD) and gives memory
/// back to the system only when more than 256 MiB is free at the heap's top (M_TRIM_THRESHOLD). A block that has its
/// own mapping is unmapped when freed, so the next one of that size costs a page fault and a zeroed page per 4 KiB:
/// oneDNN reorders every convolution's weights into a fresh buffer on every call (14 MB for a 640-channel 3×3
/// conv, 118 MB for the SD UNet's largest), and with glibc's default (a threshold that rises to the largest block
/// freed, at most 32 MiB) or the 8 MiB threshold this class set from 2026-12-02, those buffers were mapped, faulted
/// and unmapped on each call. ONEDNN_VERBOSE showed the 640-channel weight reorder taking 4.9-5.7 ms here against
/// 1.2-1.4 ms in torch 1.13 (whose buffers came from its heap), with the convolution itself at 8.4 ms on both.
/// Measured 2026-12-03 (<c>fnf bench --preset sd15 --sizes 256 --measure unet_forward_no_grad,unet_lora_forward_backward
/// --repeats 4 --threads 2</c>, two runs of each, alternating): LoRA forward+backward 4.54 and 4.95 s with the 8 MiB
/// threshold, 3.77 and 3.93 s with these; forward 1.64/2.25 s against 1.73/1.80 s; page faults per run 9.0-10.8 M
/// against 5.4-5.5 M; peak RSS 4504-4611 against 4480-4547 MiB (forward) and 5216-5228 against 5225-5271 MiB (LoRA).
/// The 8 MiB threshold had replaced glibc's default because the default's rising threshold left 10-30 MB
/// activations' holes resident (forward peak 4478-4633 MiB); a fixed threshold above every activation and weight
/// buffer keeps those holes in use instead. The cost: a 512 px DRaFT-K training step's peak rose by 360-440 MiB
/// (9504-9630 MiB; kernels changed in between too), and the 256 px forward's peak varies from process to process
/// (135 to 490 MiB above the memory after the warm-up; +146 to +261 MiB once <see cref="IO.StateDict.LoadFile"/>
/// stopped holding a second copy of the weights; see results/bench-sd/README.md).
/// While a model's weights are allocated (<see cref="WeightMappings"/>, around <c>TextToImagePipeline.Load</c>) the
/// threshold is 1 MiB instead, so each weight of 1 MiB or more gets a mapping of its own and the heap holds only
/// small and transient blocks, as in a PyTorch process (glibc's dynamic threshold maps its weights). With the weights
/// in the heap, a forward pass scattered its temporaries (oneDNN's weight reorders, activations) over the holes
/// between 4 GB of weights, and every page it touched there stayed resident: the 256 px forward's peak rose 233-279
/// MiB above the memory after the warm-up where the live blocks rose 121 MiB (traced with an LD_PRELOAD malloc
/// counter). Measured 2026-12-03 (<c>fnf bench one --model sd15 --measure unet_forward_no_grad --size 256
/// --repeats 2 --threads 2</c>, three alternating runs each): peak 4559, 4568, 4605 MiB with the weights in the heap,
/// 4463, 4481, 4481 MiB in their own mappings; the peer (diffusers) 4547 MiB. glibc applies the threshold only when
/// it must grow the heap: a weight that fits a free block of the heap still goes there. So the first load of a
/// fresh process (fnf's commands) gets every weight mapped; a long-lived process that has freed big blocks before may
/// get some of them in the heap again (the test suite's process does).
/// A MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ in the environment is
/// the user's choice and leaves both settings alone.
/// </para>
/// <para>
/// NNPACK is switched off (PyTorch's <c>torch.backends.nnpack.set_flags(False)</c>): on CPUs it does not support, such as
/// this project's, every convolution asked for it and libtorch logged "Could not initialize NNPACK! Reason: Unsupported
/// hardware." each time, hundreds of lines per <c>fnf sample</c>, burying the one error line a bad input gets. Where NNPACK
/// does work, libtorch uses it only for batches of 16 or more; without it every machine computes convolutions as these
/// did when the golden cases were checked. TorchSharp does not expose the switch and its environment has no variable
/// for it (TORCH_CPP_LOG_LEVEL is read only by the Python module), so at::Context::setUserEnabledNNPACK is called
/// through its exported symbol once libtorch is loaded: TorchSharp's first call into LibTorchSharp, which resolves
/// through <see cref="NativeLibrary.SetDllImportResolver"/>, is the first moment libtorch is in memory, and comes
/// before any convolution.
/// </para>
/// </summary>
public static class NativeSettings
{
    [DllImport("libc", EntryPoint = "setenv")]
    static extern int SetEnv(string name, string value, int overwrite);

    /// <summary>The values set unless the user's environment already names the setting.</summary>
    public static readonly IReadOnlyDictionary<string, string> Defaults = new Dictionary<string, string>
    {
        ["OMP_WAIT_POLICY"] = "PASSIVE",
    };

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int MallOpt(int param, int value);

    const int MallocMmapThresholdParam = -3; // glibc's M_MMAP_THRESHOLD
    const int MallocTrimThresholdParam = -1; // glibc's M_TRIM_THRESHOLD
    /// <summary>The malloc threshold set at start-up (see the class remarks): blocks of this size and larger get their own mapping.</summary>
    public const int MmapThresholdBytes = 128 << 20;
    /// <summary>Free memory at the heap's top beyond this is given back to the system (see the class remarks).</summary>
    public const int TrimThresholdBytes = 256 << 20;

    /// <summary>How <see cref="Effective"/> reports the malloc settings this class made itself.</summary>
    public static readonly string MallocSetting = $"mmap {MmapThresholdBytes}, trim {TrimThresholdBytes} (mallopt)";

    static bool _applied;
    static readonly List<string> _setHere = new();
    static string? _mmapThreshold;

    /// <summary>The environment variables this process set itself (not the user's): a peer process that should run as its own defaults leave them has them removed.</summary>
    public static IReadOnlyList<string> SetHere { get { lock (_setHere) return _setHere.ToList(); } }
    static int _nnpackOff;

    /// <summary>The settings in force (ours or the user's), plus the OpenMP ones, for benchmark reports.</summary>
    public static IReadOnlyDictionary<string, string?> Effective() =>
        Defaults.Keys.Concat(new[] { "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS" }).Distinct()
            .ToDictionary(k => k, k => Environment.GetEnvironmentVariable(k))
            .Append(new KeyValuePair<string, string?>("malloc_mmap_threshold", _mmapThreshold)).ToDictionary();

    /// <summary>Sets a native environment variable unless it is already set (before libtorch loads).</summary>
    public static void SetDefault(string name, string value)
    {
        if (Environment.GetEnvironmentVariable(name) is not null) return;
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) SetEnv(name, value, 0);
        Environment.SetEnvironmentVariable(name, value);
        lock (_setHere) _setHere.Add(name);
    }

    /// <summary>Applies <see cref="Defaults"/> (idempotent). Must run before libtorch is loaded to take effect.</summary>
    public static void Apply()
    {
        if (_applied) return;
        _applied = true;
        foreach (var (name, value) in Defaults) SetDefault(name, value);
        HookNnpackSwitch();
        SetMallocThreshold();
    }

    /// <summary>Weights of this size and larger get a mapping of their own inside <see cref="WeightMappings"/>.</summary>
    public const int WeightMmapThresholdBytes = 1 << 20;

    static readonly object _weightScopesLock = new();
    static int _weightScopes;

    /// <summary>The mmap threshold this class last set with mallopt, in bytes; null where it sets none (see <see cref="WeightMappings"/>).</summary>
    public static int? MmapThresholdSet { get; private set; }

    /// <summary>
    /// Lowers the malloc threshold to <see cref="WeightMmapThresholdBytes"/> until disposed (see the class remarks), so
    /// the weights allocated meanwhile each get their own mapping. Nested and concurrent scopes restore the start-up
    /// threshold when the last one ends. Does nothing where the thresholds are not this class's (the user's
    /// environment, or no glibc).
    /// </summary>
    public static IDisposable WeightMappings()
    {
        if (_mmapThreshold != MallocSetting) return new WeightScope(false);
        lock (_weightScopesLock)
            if (_weightScopes++ == 0 && MallOpt(MallocMmapThresholdParam, WeightMmapThresholdBytes) == 1) MmapThresholdSet = WeightMmapThresholdBytes;
        return new WeightScope(true);
    }

    sealed class WeightScope(bool counted) : IDisposable
    {
        bool _open = counted;

        public void Dispose()
        {
            if (!_open) return;
            _open = false;
            lock (_weightScopesLock)
                if (--_weightScopes == 0 && MallOpt(MallocMmapThresholdParam, MmapThresholdBytes) == 1) MmapThresholdSet = MmapThresholdBytes;
        }
    }

    static void SetMallocThreshold()
    {
        string? mmap = Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_"), trim = Environment.GetEnvironmentVariable("MALLOC_TRIM_THRESHOLD_");
        if (mmap is not null || trim is not null) { _mmapThreshold = $"mmap {mmap ?? "glibc's"}, trim {trim ?? "glibc's"} (environment)"; return; }
        if (!OperatingSystem.IsLinux()) return;
        // mallopt is glibc's (musl has none): where it is missing, malloc keeps its own policy.
        try
        {
            bool mmapSet = MallOpt(MallocMmapThresholdParam, MmapThresholdBytes) == 1, trimSet = MallOpt(MallocTrimThresholdParam, TrimThresholdBytes) == 1;
            if (mmapSet) MmapThresholdSet = MmapThresholdBytes;
            _mmapThreshold = (mmapSet, trimSet) switch
            {
                (true, true) => MallocSetting,
                (false, false) => null,
                _ => $"mmap {(mmapSet ? MmapThresholdBytes : "glibc's")}, trim {(trimSet ? TrimThresholdBytes : "glibc's")} (mallopt, partly refused)",
            };
        }
        catch (EntryPointNotFoundException) { }
    }

    /// <summary>Whether NNPACK was switched off in libtorch (false before the first torch call, or where the symbols are absent).</summary>
    public static bool NnpackDisabled => Volatile.Read(ref _nnpackOff) == 2;

    static void HookNnpackSwitch()
    {
        var torchSharp = typeof(TorchSharp.torch).Assembly; // typeof runs no static constructor: libtorch stays unloaded
        try { NativeLibrary.SetDllImportResolver(torchSharp, ResolveTorchSharp); }
        // Another component registered a resolver for TorchSharp first; NNPACK then stays as libtorch sets it.
        catch (InvalidOperationException) { }
    }

    // Called for each P/Invoke of TorchSharp the first time it runs. Returning Zero keeps the runtime's own resolution.
    static IntPtr ResolveTorchSharp(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (Interlocked.CompareExchange(ref _nnpackOff, 1, 0) == 0) Volatile.Write(ref _nnpackOff, DisableNnpack(assembly, searchPath) ? 2 : 3);
        return IntPtr.Zero;
    }

    static bool DisableNnpack(Assembly torchSharp, DllImportSearchPath? searchPath)
    {
        // TorchSharp loads torch_cpu (or torch_cuda with torch_cpu beside it) before its first P/Invoke; this finds that copy.
        if (!NativeLibrary.TryLoad("torch_cpu", torchSharp, searchPath, out var lib)) return false;
        if (!NativeLibrary.TryGetExport(lib, "_ZN2at13globalContextEv", out var globalContext)) return false;
        if (!NativeLibrary.TryGetExport(lib, "_ZN2at7Context20setUserEnabledNNPACKEb", out var setEnabled)) return false;
        unsafe
        {
            var context = ((delegate* unmanaged<IntPtr>)globalContext)();
            ((delegate* unmanaged<IntPtr, byte, void>)setEnabled)(context, 0);
        }
        return true;
    }

#pragma warning disable CA2255 // a module initializer is the one place guaranteed to run before any torch call made through this library
    [ModuleInitializer]
    internal static void OnLoad() => Apply();
#pragma warning restore CA2255
}
