namespace FocusNFix;

/// <summary>
/// A run that cannot produce a usable result (every step skipped, non-finite weights at the end). Not bad input:
/// the CLI prints the message and exits with code 1, and no final file is written.
/// </summary>
public sealed class TrainingFailedException : Exception
{
    public TrainingFailedException(string message) : base(message) { }
}
