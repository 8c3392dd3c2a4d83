using FocusNFix;

namespace FocusNFix.Cli;

/// <summary>Turns expected failures (bad input, missing files) into one clear line on stderr and exit code 2.</summary>
public static class CliErrors
{
    public static int Run(Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (Unwrap(e) is InvalidInputException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"error: {Unwrap(e).Message}");
            return 2;
        }
        catch (Exception e) when (Unwrap(e) is TrainingFailedException)
        {
            Console.Error.WriteLine($"error: {Unwrap(e).Message}");
            return 1;
        }
    }

    static Exception Unwrap(Exception e) => e is System.Reflection.TargetInvocationException or AggregateException && e.InnerException != null ? Unwrap(e.InnerException) : e;

    /// <summary>Wraps a command action so the same error handling applies inside System.CommandLine's invocation.</summary>
    public static Func<System.CommandLine.ParseResult, int> Action(Func<System.CommandLine.ParseResult, int> body) => pr => Run(() => body(pr));
}
