using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FocusNFix.Models;

/// <summary>diffusers <c>Timesteps</c>: sinusoidal embedding of 1-D timesteps, always computed in float32.</summary>
public sealed class Timesteps : nn.Module<Tensor, Tensor>, IOutputHooked
{
    readonly int numChannels;
    readonly bool flipSinToCos;
    readonly double downscaleFreqShift;
    readonly double maxPeriod;

    public Action<Tensor>? OutputHook { get; set; }

    public Timesteps(int numChannels, bool flipSinToCos, double downscaleFreqShift, double maxPeriod = 10000) : base(nameof(Timesteps))
    {
        this.numChannels = numChannels;
        this.flipSinToCos = flipSinToCos;
        this.downscaleFreqShift = downscaleFreqShift;
        this.maxPeriod = maxPeriod;
        RegisterComponents();
    }

    public override Tensor forward(Tensor timesteps)
    {
        if (timesteps.dim() != 1) throw new ArgumentException($"Timesteps expects a 1-D tensor, got shape [{string.Join(", ", timesteps.shape)}]");
        using var scope = NewDisposeScope();
        int half = numChannels / 2;
        // Same op order and float32 rounding as the reference: (-ln P * arange) / (half - shift), exp, t * freq.
        var exponent = arange(0, half, dtype: ScalarType.Float32, device: timesteps.device) * (-Math.Log(maxPeriod));
        exponent = exponent / (half - downscaleFreqShift);
        var freqs = exponent.exp();
        var args = timesteps.unsqueeze(1).to(ScalarType.Float32) * freqs.unsqueeze(0);
        var emb = cat(new[] { args.sin(), args.cos() }, -1);
        if (flipSinToCos) emb = cat(new[] { emb.narrow(1, half, half), emb.narrow(1, 0, half) }, -1);
        if (numChannels % 2 == 1) emb = nn.functional.pad(emb, new long[] { 0, 1, 0, 0 });
        return OutputHook.Emit(emb).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>TimestepEmbedding</c>: linear_1 → SiLU → linear_2.</summary>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>, IOutputHooked
{
    public Linear linear_1;
    public Linear linear_2;

    public Action<Tensor>? OutputHook { get; set; }

    public TimestepEmbedding(int inChannels, int timeEmbedDim) : base(nameof(TimestepEmbedding))
    {
        linear_1 = nn.Linear(inChannels, timeEmbedDim);
        linear_2 = nn.Linear(timeEmbedDim, timeEmbedDim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor sample)
    {
        using var scope = NewDisposeScope();
        var h = linear_2.forward(nn.functional.silu(linear_1.forward(sample)));
        return OutputHook.Emit(h).MoveToOuterDisposeScope();
    }
}
