using System.CommandLine;
using FocusNFix.Conformance;
using Spectre.Console;

namespace FocusNFix.Cli;

/// <summary><c>fnf check CASE_DIR...</c>: runs a component on a golden case's inputs and compares with its outputs.</summary>
public static class CheckCommand
{
    public static Command Create()
    {
        var cases = new Argument<string[]>("CASE_DIR") { Description = "Case folder(s) laid out like ../shared/golden/<case> (config, weights, inputs.safetensors, outputs.safetensors)", Arity = ArgumentArity.OneOrMore };
        var atol = new Option<double?>("--atol") { Description = "Absolute tolerance for every tensor (default: the golden README's per-kind value)" };
        var rtol = new Option<double?>("--rtol") { Description = "Relative tolerance for every tensor (default: the golden README's per-kind value)" };
        var kind = new Option<string?>("--kind") { Description = $"Case kind, when it cannot be detected: {string.Join(", ", ConformanceCheck.Kinds)}" };
        var verbose = new Option<bool>("--all") { Description = "List every tensor, not only the failures and a summary per case" };
        var cmd = new Command("check", "Conformance check: prove a converted checkpoint or component matches the reference outputs (PASS/FAIL, exit 0 only on PASS)")
        {
            cases, atol, rtol, kind, verbose,
        };
        cmd.SetAction(CliErrors.Action(pr =>
        {
            bool allPassed = true;
            foreach (var dir in pr.GetValue(cases)!)
            {
                var report = ConformanceCheck.Check(dir, pr.GetValue(atol), pr.GetValue(rtol), pr.GetValue(kind));
                allPassed &= report.Passed;
                Print(report, pr.GetValue(verbose));
            }
            return allPassed ? 0 : 1;
        }));
        return cmd;
    }

    static void Print(CaseReport report, bool all)
    {
        var table = new Table().Title($"{Markup.Escape(report.CaseDir)} [grey]({report.Kind})[/]")
            .AddColumns("tensor", "max abs err", "max rel err", "atol", "rtol", "result");
        var rows = all || report.Checks.Count <= 40 ? report.Checks : report.Checks.Where(c => !c.Passed).ToList();
        foreach (var c in rows)
            table.AddRow(Markup.Escape(c.Name), Fmt(c.MaxAbsError), Fmt(c.MaxRelError), Fmt(c.Atol), Fmt(c.Rtol),
                c.Passed ? "[green]PASS[/]" : $"[red]FAIL[/] {Markup.Escape(c.Problem ?? "")}");
        AnsiConsole.Write(table);
        double worst = report.Checks.Where(c => !double.IsNaN(c.MaxAbsError)).Select(c => c.MaxAbsError).DefaultIfEmpty(0).Max();
        int failed = report.Checks.Count(c => !c.Passed);
        Console.WriteLine($"{(report.Passed ? "PASS" : "FAIL")} {report.CaseDir} ({report.Kind}): {report.Checks.Count} tensors, {failed} failed, max abs error {worst:E2}");
        foreach (var note in report.Notes ?? Array.Empty<string>()) Console.WriteLine($"note: {note}");
    }

    static string Fmt(double v) => double.IsNaN(v) ? "-" : v.ToString("E2");
}
