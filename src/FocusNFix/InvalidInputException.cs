namespace FocusNFix;

/// <summary>
/// Bad user input: a malformed file, a missing key, a wrong value. The message always names the
/// file, key or value and what was expected; the CLI prints it without a stack trace.
/// </summary>
public sealed class InvalidInputException : Exception
{
    public InvalidInputException(string message) : base(message) { }
    public InvalidInputException(string message, Exception inner) : base(message, inner) { }
}
