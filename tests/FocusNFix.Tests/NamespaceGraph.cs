using System.Text;
using System.Text.RegularExpressions;

namespace FocusNFix.Tests;

/// <summary>
/// Which namespace of the project depends on which, read from the C# source (no compiler needed, so constants and
/// nameof, which leave no trace in the compiled assembly, count too). A file in namespace A depends on B when it has
/// <c>using B;</c> (also <c>using static</c> and aliases: an unused using is still a dependency, so remove it), names
/// <c>FocusNFix.B.X</c> (fully qualified), names <c>Seg.T</c> where B = an enclosing namespace + <c>.Seg</c> declares the type T (C#
/// resolves such partially qualified names from the enclosing namespaces), or names a type declared in an enclosing
/// namespace B without qualification. Comments and plain string literals are ignored.
/// </summary>
public sealed class NamespaceGraph
{
    /// <summary>One reference that makes an edge: where it is and what it says.</summary>
    public sealed record Evidence(string File, int Line, string Text)
    {
        public override string ToString() => $"{File}:{Line}: {Text}";
    }

    /// <summary>from namespace -> to namespace -> the references that make the edge.</summary>
    public SortedDictionary<string, SortedDictionary<string, List<Evidence>>> Edges { get; } = new(StringComparer.Ordinal);

    /// <summary>Every namespace a scanned file declares (a file without one is in "(global)").</summary>
    public SortedSet<string> Namespaces { get; } = new(StringComparer.Ordinal);

    public const string Global = "(global)";

    static readonly Regex NamespaceDecl = new(@"^\s*namespace\s+([\w.]+)\s*[;{]", RegexOptions.Multiline);
    static readonly Regex TypeDecl = new(@"\b(?:class|struct|interface|enum|record(?:\s+(?:class|struct))?)\s+@?([A-Za-z_]\w*)");
    static readonly Regex DelegateDecl = new(@"\bdelegate\s+[\w<>\[\],.?\s()]+?\s+([A-Za-z_]\w*)\s*[<(]");
    static readonly Regex UsingDirective = new(@"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?(?:global::)?([\w.]+)\s*;", RegexOptions.Multiline);
    static readonly Regex DottedName = new(@"(?<![\w.])(?:global::)?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+");
    static readonly Regex Qualified = new(@"(?<![\w.:])([A-Za-z_]\w*)\.([A-Za-z_]\w*)");
    static readonly Regex Identifier = new(@"(?<![\w.])[A-Za-z_]\w*");

    sealed record SourceFile(string Path, string Namespace, string Code);

    /// <summary>Scans every .cs file under the given folders (bin/ and obj/ skipped); paths in evidence are relative to <paramref name="baseDir"/>.</summary>
    public static NamespaceGraph FromFolders(string baseDir, params string[] folders)
    {
        var files = new List<SourceFile>();
        foreach (var folder in folders)
            foreach (var path in Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                var rel = System.IO.Path.GetRelativePath(baseDir, path);
                var parts = rel.Split(System.IO.Path.DirectorySeparatorChar);
                if (parts.Contains("bin") || parts.Contains("obj")) continue;
                var code = StripCommentsAndStrings(File.ReadAllText(path));
                var ns = NamespaceDecl.Match(code) is { Success: true } m ? m.Groups[1].Value : Global;
                files.Add(new SourceFile(rel, ns, code));
            }
        return Build(files);
    }

    /// <summary>Builds the graph of in-memory sources (file name, text); for tests of the graph itself.</summary>
    public static NamespaceGraph FromSources(IEnumerable<(string File, string Text)> sources) =>
        Build(sources.Select(s =>
        {
            var code = StripCommentsAndStrings(s.Text);
            var ns = NamespaceDecl.Match(code) is { Success: true } m ? m.Groups[1].Value : Global;
            return new SourceFile(s.File, ns, code);
        }).ToList());

    static NamespaceGraph Build(List<SourceFile> files)
    {
        var g = new NamespaceGraph();
        var types = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var f in files)
        {
            g.Namespaces.Add(f.Namespace);
            var set = types.TryGetValue(f.Namespace, out var s) ? s : types[f.Namespace] = new HashSet<string>(StringComparer.Ordinal);
            foreach (Match m in TypeDecl.Matches(f.Code)) set.Add(m.Groups[1].Value);
            foreach (Match m in DelegateDecl.Matches(f.Code)) set.Add(m.Groups[1].Value);
        }
        string? Known(string dotted)
        {
            for (var name = dotted; name.Length > 0; name = name.Contains('.') ? name[..name.LastIndexOf('.')] : "")
                if (g.Namespaces.Contains(name)) return name;
            return null;
        }
        foreach (var f in files)
        {
            var lineStarts = LineStarts(f.Code);
            void Add(string? to, int index, string text)
            {
                if (to is null || to == f.Namespace) return;
                if (!g.Edges.TryGetValue(f.Namespace, out var outgoing)) g.Edges[f.Namespace] = outgoing = new(StringComparer.Ordinal);
                if (!outgoing.TryGetValue(to, out var list)) outgoing[to] = list = new List<Evidence>();
                int line = LineOf(lineStarts, index);
                if (!list.Any(e => e.File == f.Path && e.Line == line)) list.Add(new Evidence(f.Path, line, text));
            }
            foreach (Match m in UsingDirective.Matches(f.Code)) Add(Known(m.Groups[1].Value), m.Index, m.Value.Trim());
            // A dotted name that starts with a whole namespace name is fully qualified (FocusNFix.Rewards.RewardFactory).
            foreach (Match m in DottedName.Matches(f.Code)) Add(Known(m.Value.Replace("global::", "")), m.Index, m.Value);
            var enclosing = Enclosing(f.Namespace).ToList();
            foreach (Match m in Qualified.Matches(f.Code))
                foreach (var outer in enclosing)
                {
                    var candidate = $"{outer}.{m.Groups[1].Value}";
                    if (types.TryGetValue(candidate, out var declared) && declared.Contains(m.Groups[2].Value)) { Add(candidate, m.Index, m.Value); break; }
                }
            var own = types.GetValueOrDefault(f.Namespace) ?? new HashSet<string>();
            foreach (Match m in Identifier.Matches(f.Code))
            {
                if (own.Contains(m.Value)) continue;
                foreach (var outer in enclosing.Skip(1))
                    if (types.TryGetValue(outer, out var declared) && declared.Contains(m.Value)) { Add(outer, m.Index, m.Value); break; }
            }
        }
        return g;
    }

    /// <summary>The namespace itself and each enclosing one, innermost first (FocusNFix.A.B, FocusNFix.A, FocusNFix).</summary>
    static IEnumerable<string> Enclosing(string ns)
    {
        if (ns == Global) yield break;
        for (var n = ns; ; n = n[..n.LastIndexOf('.')])
        {
            yield return n;
            if (!n.Contains('.')) yield break;
        }
    }

    public bool HasEdge(string from, string to) => Edges.TryGetValue(from, out var o) && o.ContainsKey(to);

    public IEnumerable<Evidence> EvidenceOf(string from, string to) =>
        Edges.TryGetValue(from, out var o) && o.TryGetValue(to, out var list) ? list : Enumerable.Empty<Evidence>();

    /// <summary>A cycle as the list of its namespaces (the first repeated at the end), or null when the graph has none.</summary>
    public List<string>? FindCycle() => FindCycle(Edges.ToDictionary(e => e.Key, e => (IEnumerable<string>)e.Value.Keys));

    /// <summary>Depth-first search; the first back edge closes a cycle. Visits nodes in ordinal order, so the answer is stable.</summary>
    public static List<string>? FindCycle(IReadOnlyDictionary<string, IEnumerable<string>> edges)
    {
        var state = new Dictionary<string, int>(StringComparer.Ordinal);  // absent: unvisited, 1: on the stack, 2: done
        var stack = new List<string>();
        List<string>? Visit(string node)
        {
            state[node] = 1;
            stack.Add(node);
            foreach (var next in (edges.GetValueOrDefault(node) ?? Enumerable.Empty<string>()).Order(StringComparer.Ordinal))
            {
                if (state.GetValueOrDefault(next) == 1) return stack.Skip(stack.IndexOf(next)).Append(next).ToList();
                if (state.GetValueOrDefault(next) == 0 && Visit(next) is { } cycle) return cycle;
            }
            stack.RemoveAt(stack.Count - 1);
            state[node] = 2;
            return null;
        }
        foreach (var node in edges.Keys.Order(StringComparer.Ordinal))
            if (state.GetValueOrDefault(node) == 0 && Visit(node) is { } cycle) return cycle;
        return null;
    }

    /// <summary>
    /// Blanks comments and the text of plain, verbatim and raw string literals and char literals (keeping line breaks,
    /// so line numbers stay right). Interpolated strings are kept: their holes are code.
    /// </summary>
    public static string StripCommentsAndStrings(string s)
    {
        var sb = new StringBuilder(s.Length);
        int i = 0;
        void Blank(int end)
        {
            for (; i < end && i < s.Length; i++) sb.Append(s[i] == '\n' ? '\n' : ' ');
        }
        while (i < s.Length)
        {
            char c = s[i];
            char next = i + 1 < s.Length ? s[i + 1] : '\0';
            if (c == '/' && next == '/') { int e = s.IndexOf('\n', i); Blank(e < 0 ? s.Length : e); }
            else if (c == '/' && next == '*') { int e = s.IndexOf("*/", i + 2, StringComparison.Ordinal); Blank(e < 0 ? s.Length : e + 2); }
            else if (c == '"' && string.CompareOrdinal(s, i, "\"\"\"", 0, 3) == 0)
            {
                int n = 0;
                while (i + n < s.Length && s[i + n] == '"') n++;
                int e = s.IndexOf(new string('"', n), i + n, StringComparison.Ordinal);
                Blank(e < 0 ? s.Length : e + n);
            }
            else if (c == '@' && next == '"') Blank(EndOfVerbatim(s, i + 2));
            else if (c == '"') Blank(EndOfRegular(s, i + 1));
            else if ((c == '$' && (next == '"' || next == '@')) || (c == '@' && next == '$'))
            {
                // Interpolated: copy as it is up to the closing quote.
                int start = i;
                bool verbatim = s.AsSpan(i, Math.Min(3, s.Length - i)).Contains('@');
                int q = s.IndexOf('"', i), n = 0;
                while (q + n < s.Length && s[q + n] == '"') n++;
                int close = n >= 3 ? s.IndexOf(new string('"', n), q + n, StringComparison.Ordinal) : -1;
                int e = n >= 3 ? (close < 0 ? s.Length : close + n) : verbatim ? EndOfVerbatim(s, q + 1) : EndOfRegular(s, q + 1);
                sb.Append(s, start, e - start);
                i = e;
            }
            else if (c == '\'' && (next == '\\' ? i + 3 < s.Length : i + 2 < s.Length))
            {
                int e = s.IndexOf('\'', next == '\\' ? i + 3 : i + 2);
                Blank(e < 0 || e - i > 10 ? i + 1 : e + 1);
            }
            else { sb.Append(c); i++; }
        }
        return sb.ToString();
    }

    static int EndOfRegular(string s, int from)
    {
        for (int j = from; j < s.Length; j++)
        {
            if (s[j] == '\\') j++;
            else if (s[j] == '"' || s[j] == '\n') return j + 1;
        }
        return s.Length;
    }

    static int EndOfVerbatim(string s, int from)
    {
        for (int j = from; j < s.Length; j++)
            if (s[j] == '"')
            {
                if (j + 1 < s.Length && s[j + 1] == '"') j++;
                else return j + 1;
            }
        return s.Length;
    }

    static List<int> LineStarts(string s)
    {
        var starts = new List<int> { 0 };
        for (int i = 0; i < s.Length; i++) if (s[i] == '\n') starts.Add(i + 1);
        return starts;
    }

    static int LineOf(List<int> starts, int index)
    {
        int k = starts.BinarySearch(index);
        return (k >= 0 ? k : ~k - 1) + 1;
    }
}
