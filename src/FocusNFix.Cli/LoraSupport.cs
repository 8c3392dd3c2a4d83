using FocusNFix.Pipelines;

namespace FocusNFix.Cli;

/// <summary>Applies a LoRA file to a loaded pipeline (kept in one place for every command with --lora).</summary>
public static class LoraSupport
{
    public static void Apply(TextToImagePipeline pipe, string path, double scale) =>
        throw new InvalidInputException($"{path}: LoRA loading is not wired yet");
}
