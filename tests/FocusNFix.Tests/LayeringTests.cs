using Xunit;

namespace FocusNFix.Tests;

/// <summary>
/// The layers of the library, read from the source (<see cref="NamespaceGraph"/>): the core (Training, Evaluation,
/// Rewards, Pipelines, Models, Schedulers, Lora, IO, Masks, Conformance and the root namespace) knows nothing of the
/// ShapesWorld benchmark; the benchmark (ShapesWorld) knows nothing of the models trained for it (WorldModels); and
/// neither knows the experiments run with them (Experiments). ShapesWorld plugs into the core through hooks
/// (RewardFactory.RegionRewardLoader, FocusNFixTrainer.WorldPromptSource, the evaluator's Oracle), so a dependency the
/// other way would be a cycle. No namespace cycles anywhere, the CLI included.
/// </summary>
public class LayeringTests
{
    const string ShapesWorld = "FocusNFix.ShapesWorld", WorldModels = "FocusNFix.WorldModels", Experiments = "FocusNFix.Experiments";
    static readonly string[] BenchmarkLayers = { ShapesWorld, WorldModels, Experiments };

    static readonly Lazy<NamespaceGraph> Source = new(() => NamespaceGraph.FromFolders(Golden.Root,
        Path.Combine(Golden.Root, "src", "FocusNFix"), Path.Combine(Golden.Root, "src", "FocusNFix.Cli")));

    static bool InLayer(string ns, string layer) => ns == layer || ns.StartsWith(layer + ".", StringComparison.Ordinal);

    /// <summary>Every library namespace that is not one of the benchmark layers is core, so a new folder is core until said otherwise.</summary>
    static IEnumerable<string> CoreNamespaces(NamespaceGraph g) =>
        g.Namespaces.Where(ns => InLayer(ns, "FocusNFix") && !InLayer(ns, "FocusNFix.Cli") && !BenchmarkLayers.Any(l => InLayer(ns, l)));

    static List<string> Violations(NamespaceGraph g, IEnumerable<string> from, IEnumerable<string> forbidden)
    {
        var list = new List<string>();
        foreach (var a in from)
            foreach (var (b, evidence) in g.Edges.GetValueOrDefault(a) ?? new())
                if (forbidden.Any(l => InLayer(b, l)))
                    list.AddRange(evidence.Select(e => $"{a} -> {b}: {e}"));
        return list;
    }

    [Fact]
    public void TheGraphSeesTheKnownDependencies()
    {
        // Guards against a parser that finds nothing and so passes every layering test below.
        var g = Source.Value;
        foreach (var (a, b) in new[]
        {
            ("FocusNFix.Training", "FocusNFix.Pipelines"), ("FocusNFix.Training", "FocusNFix.Rewards"), ("FocusNFix.Training", "FocusNFix"),
            ("FocusNFix.Evaluation", "FocusNFix.Training"), ("FocusNFix.Cli", "FocusNFix.IO"),
            (WorldModels, ShapesWorld), (WorldModels, "FocusNFix.Rewards"), (Experiments, WorldModels), ("FocusNFix.Cli", Experiments),
        })
            Assert.True(g.HasEdge(a, b), $"expected an edge {a} -> {b}; edges: {string.Join(", ", g.Edges.SelectMany(e => e.Value.Keys.Select(k => $"{e.Key}->{k}")))}");
        Assert.Contains("FocusNFix.Masks", CoreNamespaces(g));
        Assert.DoesNotContain(ShapesWorld, CoreNamespaces(g));
    }

    [Fact]
    public void CoreDoesNotDependOnShapesWorldItsModelsOrTheExperiments()
    {
        var g = Source.Value;
        var v = Violations(g, CoreNamespaces(g), BenchmarkLayers);
        Assert.True(v.Count == 0, "the core references the benchmark layers:\n" + string.Join("\n", v));
    }

    [Fact]
    public void TheBenchmarkDoesNotDependOnItsModelsAndNeitherOnTheExperiments()
    {
        var g = Source.Value;
        var v = Violations(g, g.Namespaces.Where(ns => InLayer(ns, ShapesWorld)), new[] { WorldModels, Experiments })
            .Concat(Violations(g, g.Namespaces.Where(ns => InLayer(ns, WorldModels)), new[] { Experiments })).ToList();
        Assert.True(v.Count == 0, "a lower layer references a higher one:\n" + string.Join("\n", v));
    }

    [Fact]
    public void NoNamespaceCycles()
    {
        var g = Source.Value;
        var cycle = g.FindCycle();
        Assert.True(cycle is null, cycle is null ? "" : "namespace cycle " + string.Join(" -> ", cycle) + ":\n" +
            string.Join("\n", cycle.Zip(cycle.Skip(1)).SelectMany(p => g.EvidenceOf(p.First, p.Second).Take(3).Select(e => $"{p.First} -> {p.Second}: {e}"))));
    }

    [Fact]
    public void CycleFinderReportsACycleAndOnlyACycle()
    {
        var acyclic = new Dictionary<string, IEnumerable<string>> { ["a"] = new[] { "b", "c" }, ["b"] = new[] { "c" }, ["c"] = Array.Empty<string>() };
        Assert.Null(NamespaceGraph.FindCycle(acyclic));
        var cyclic = new Dictionary<string, IEnumerable<string>> { ["a"] = new[] { "b" }, ["b"] = new[] { "c" }, ["c"] = new[] { "a", "d" }, ["d"] = Array.Empty<string>() };
        Assert.Equal(new[] { "a", "b", "c", "a" }, NamespaceGraph.FindCycle(cyclic));
    }

    [Fact]
    public void EachKindOfReferenceMakesAnEdgeAndCommentsAndStringsDoNot()
    {
        var g = NamespaceGraph.FromSources(new[]
        {
            ("Root.cs", "namespace P;\npublic class RootError { }"),
            ("A.cs", "using P.B;\nnamespace P.A;\nclass X { }"),
            ("B.cs", "namespace P.B;\npublic class TypeB { object o = P.C.TypeC.Value; }"),
            ("C.cs", "namespace P.C;\npublic class TypeC { public static int Value; object d = D.TypeD.Make(); }"),
            ("D.cs", "namespace P.D;\npublic class TypeD { static object Make() => new RootError(); }"),
            ("E.cs", "namespace P.E;\n// using P.A; P.A.X\n/* P.B.TypeB */\nclass Y { string s = \"P.C.TypeC // \"; string t = @\"D.TypeD\"; char q = '\"'; }"),
        });
        Assert.True(g.HasEdge("P.A", "P.B"));    // using directive
        Assert.True(g.HasEdge("P.B", "P.C"));    // fully qualified
        Assert.True(g.HasEdge("P.C", "P.D"));    // partially qualified from the enclosing namespace P
        Assert.True(g.HasEdge("P.D", "P"));      // a type of an enclosing namespace, unqualified
        Assert.False(g.Edges.ContainsKey("P.E"), string.Join(", ", g.Edges.GetValueOrDefault("P.E")?.Keys ?? Enumerable.Empty<string>()));
        Assert.Equal(2, g.EvidenceOf("P.C", "P.D").Single().Line);
        Assert.Null(g.FindCycle());

        // One reference back from the root closes P.D -> P -> P.D.
        var cyclic = NamespaceGraph.FromSources(new[]
        {
            ("Root.cs", "namespace P;\npublic class RootError { object o = D.TypeD.Make(); }"),
            ("D.cs", "namespace P.D;\npublic class TypeD { static object Make() => new RootError(); }"),
        });
        Assert.Equal(new[] { "P", "P.D", "P" }, cyclic.FindCycle());
    }

    [Fact]
    public void ShapesWorldRegistersItsHooksWhenTheLibraryLoads()
    {
        Assert.NotNull(FocusNFix.Rewards.RewardFactory.RegionRewardLoader);
        Assert.NotNull(FocusNFix.Training.FocusNFixTrainer.WorldPromptSource);
    }
}
