using System.CommandLine;
using System.Text.RegularExpressions;
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

    /// <summary>
    /// Runs a parsed command line, or refuses one with parse errors the way every other bad input is refused: one
    /// <c>error:</c> line and exit code 2 (System.CommandLine's default prints the whole help and exits with 1).
    /// </summary>
    public static int InvokeOrRefuse(ParseResult parsed)
    {
        if (parsed.Errors.Count == 0) return parsed.Invoke();
        var names = new List<string>();
        for (System.CommandLine.Parsing.SymbolResult? r = parsed.CommandResult; r != null; r = r.Parent)
            if (r is System.CommandLine.Parsing.CommandResult c) names.Insert(0, c.Command is RootCommand ? "fnf" : c.Command.Name);
        Console.Error.WriteLine($"error: {string.Join("; ", parsed.Errors.Select(e => Plain(e.Message)))} (see {string.Join(" ", names)} --help)");
        return 2;
    }

    // "Cannot parse argument 'abc' for option '--steps' as expected type 'System.Nullable`1[System.Int32]'." names a CLR type.
    static readonly Regex TypeError = new(@"^Cannot parse argument '(.*)' for option '(.*)' as expected type '(?:System\.Nullable`1\[)?System\.(\w+)\]?'\.?$", RegexOptions.Singleline);

    static string Plain(string message)
    {
        var m = TypeError.Match(message.Trim());
        if (!m.Success) return message.Trim().TrimEnd('.');
        var expected = m.Groups[3].Value switch
        {
            "Int32" or "Int64" => "an integer",
            "Double" or "Single" => "a number",
            "Boolean" => "true or false",
            var t => $"a value of type {t}",
        };
        return $"{m.Groups[2].Value} '{m.Groups[1].Value}': expected {expected}";
    }

    static Exception Unwrap(Exception e) => e is System.Reflection.TargetInvocationException or AggregateException && e.InnerException != null ? Unwrap(e.InnerException) : e;

    /// <summary>Wraps a command action so the same error handling applies inside System.CommandLine's invocation.</summary>
    public static Func<System.CommandLine.ParseResult, int> Action(Func<System.CommandLine.ParseResult, int> body) => pr => Run(() => body(pr));
}
