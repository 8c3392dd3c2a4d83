using static TorchSharp.torch;

namespace FocusNFix.Pipelines;

/// <summary>
/// The five settings of Safe Latent Diffusion (Schramowski et al., CVPR 2023) as diffusers'
/// StableDiffusionPipelineSafe names them: sld_guidance_scale, sld_warmup_steps, sld_threshold,
/// sld_momentum_scale and sld_mom_beta.
/// </summary>
public sealed record SldSettings(double GuidanceScale, int WarmupSteps, double Threshold, double MomentumScale, double MomentumBeta)
{
    // diffusers' SafetyConfig.WEAK/MEDIUM/STRONG/MAX; Medium is also the default of StableDiffusionPipelineSafe.__call__.
    public static readonly SldSettings Weak = new(20, 15, 0.0, 0.0, 0.0);
    public static readonly SldSettings Medium = new(1000, 10, 0.01, 0.3, 0.4);
    public static readonly SldSettings Strong = new(2000, 7, 0.025, 0.5, 0.7);
    public static readonly SldSettings Max = new(5000, 0, 1.0, 0.5, 0.7);

    public static readonly IReadOnlyDictionary<string, SldSettings> Presets = new Dictionary<string, SldSettings>(StringComparer.OrdinalIgnoreCase)
    {
        ["weak"] = Weak, ["medium"] = Medium, ["strong"] = Strong, ["max"] = Max,
    };

    /// <param name="label">How the error names the setting (e.g. the CLI flag).</param>
    public static SldSettings Preset(string name, string label = "SLD preset") => Presets.TryGetValue(name, out var s) ? s
        : throw new InvalidInputException($"{label} '{name}': expected one of {string.Join(", ", Presets.Keys)}");

    /// <summary>As diffusers: safety guidance runs only when the SLD guidance scale is above 1; at or below 1 SLD is off.</summary>
    public bool Enabled => GuidanceScale > 1.0;

    /// <summary>Throws <see cref="InvalidInputException"/> naming the first setting out of range.</summary>
    /// <param name="label">How to name a setting, from its diffusers name (e.g. a CLI flag); default the diffusers name.</param>
    public void Validate(Func<string, string>? label = null)
    {
        void Check(bool ok, string key, object value, string expected)
        {
            if (!ok) throw new InvalidInputException($"{label?.Invoke(key) ?? key} = {value}: expected {expected}");
        }
        Check(double.IsFinite(GuidanceScale) && GuidanceScale >= 0, "sld_guidance_scale", GuidanceScale, "a finite number >= 0 (at most 1 turns SLD off)");
        Check(WarmupSteps >= 0, "sld_warmup_steps", WarmupSteps, "an integer >= 0");
        Check(double.IsFinite(Threshold) && Threshold >= 0, "sld_threshold", Threshold, "a finite number >= 0");
        Check(double.IsFinite(MomentumScale) && MomentumScale >= 0, "sld_momentum_scale", MomentumScale, "a finite number >= 0");
        Check(MomentumBeta is >= 0 and <= 1, "sld_mom_beta", MomentumBeta, "a number in [0, 1]");
    }
}

/// <summary>Safe Latent Diffusion for one sampling call: the concept to steer away from and the settings.</summary>
public sealed record SldOptions(string Concept, SldSettings Settings)
{
    public void Validate(Func<string, string>? label = null)
    {
        if (string.IsNullOrWhiteSpace(Concept))
            throw new InvalidInputException($"{label?.Invoke("safety_concept") ?? "safety_concept"} is empty: expected the text of the concept to steer away from");
        Settings.Validate(label);
    }
}

/// <summary>
/// The guidance direction of one sampling call with a third, safety-concept branch. Holds the SLD momentum, an
/// elementwise tensor like the latents, so each image's momentum depends only on its own branches. Follows
/// diffusers 0.27.2 StableDiffusionPipelineSafe.__call__ op for op (float32, the same scalar multiplications),
/// so the result matches the reference to rounding.
/// </summary>
public sealed class SafeGuidance : IDisposable
{
    readonly SldSettings _s;
    Tensor? _momentum;

    public SafeGuidance(SldSettings settings) => _s = settings;

    /// <summary>
    /// cond - uncond minus the safety guidance from step <see cref="SldSettings.WarmupSteps"/> on. The momentum is
    /// updated at every step, warm-up included (the paper's and diffusers' rule).
    /// </summary>
    public Tensor Direction(Tensor uncond, Tensor cond, Tensor concept, int step)
    {
        using var scope = NewDisposeScope();
        var guidance = cond - uncond;
        _momentum ??= zeros_like(guidance).DetachFromDisposeScope();
        var condMinusConcept = cond - concept;
        var scale = (condMinusConcept.abs() * _s.GuidanceScale).clamp_max(1.0);
        // A hard switch: elements where the prompt is already far enough from the concept get no safety guidance.
        var conceptScale = where(condMinusConcept >= _s.Threshold, zeros_like(scale), scale);
        var safety = (concept - uncond) * conceptScale;
        safety = safety + _s.MomentumScale * _momentum;
        var momentum = _s.MomentumBeta * _momentum + (1 - _s.MomentumBeta) * safety;
        _momentum.Dispose();
        _momentum = momentum.DetachFromDisposeScope();
        if (step >= _s.WarmupSteps) guidance = guidance - safety;
        return guidance.MoveToOuterDisposeScope();
    }

    public void Dispose() => _momentum?.Dispose();
}
