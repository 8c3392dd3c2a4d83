namespace FocusNFix.Lora;

/// <summary>
/// Shape of a new LoRA: rank r, alpha (the update is scaled by alpha / r, as in PEFT) and the UNet attention
/// projections it adapts.
/// </summary>
public sealed class LoraConfig
{
    public int Rank { get; set; } = 4;
    public double Alpha { get; set; } = 4;

    /// <summary>
    /// Matched against module paths as PEFT does: a target matches a path equal to it or ending in "." + target
    /// ("to_q", "attn2.to_k", or a full path). Only attention projections (to_q, to_k, to_v, to_out.0) can be adapted.
    /// </summary>
    public string[] TargetModules { get; set; } = { "to_q", "to_k", "to_v", "to_out.0" };

    /// <summary>
    /// Initialisation of lora_A (lora_B always starts at zero, so a new LoRA changes nothing).
    /// null: PEFT's default, kaiming_uniform_(a = √5), i.e. U(−1/√in, 1/√in).
    /// A value: N(0, InitStd²), as diffusers' legacy LoRALinearLayer (which used std = 1 / rank).
    /// </summary>
    public double? InitStd { get; set; }

    public void Validate()
    {
        if (Rank < 1) throw new InvalidInputException($"LoRA rank {Rank}: expected at least 1");
        if (!double.IsFinite(Alpha) || Alpha <= 0) throw new InvalidInputException($"LoRA alpha {Alpha}: expected a positive number");
        if (TargetModules is null || TargetModules.Length == 0) throw new InvalidInputException("LoRA target modules: none given");
        if (InitStd is double s && (!double.IsFinite(s) || s < 0)) throw new InvalidInputException($"LoRA init std {s}: expected a non-negative number");
    }

    /// <summary>PEFT's rule: the path equals the target or ends with "." + target.</summary>
    public static bool Matches(string modulePath, string target) =>
        modulePath == target || modulePath.EndsWith("." + target, StringComparison.Ordinal);
}
