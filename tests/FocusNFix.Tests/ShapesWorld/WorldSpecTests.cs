using System.Text.Json.Nodes;
using FocusNFix.ShapesWorld;
using Xunit;

namespace FocusNFix.Tests.ShapesWorld;

public class WorldSpecTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fnf-world-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);
    static WorldSpec Spec => TestWorld.Default.Spec;

    [Fact]
    public void WorldJsonRoundTrips()
    {
        var path = TestWorld.Default.WriteSpec(_dir);
        Assert.Equal(Path.Combine(_dir, "world.json"), path);
        var back = WorldSpec.Load(_dir);
        Assert.Equal(Spec, back);
        Assert.Equal(Spec.ToJson(), back.ToJson());
        Assert.Equal(Spec.Places, back.Places);
        Assert.Equal(Spec.ShapePalette, back.ShapePalette);
        Assert.Equal(Spec.Splits.TestPrompts, back.Splits.TestPrompts);
        Assert.Equal(Spec.HazardRateByShape.OrderBy(k => k.Key), back.HazardRateByShape.OrderBy(k => k.Key));
        // The loaded world renders the same pictures.
        Assert.Equal(TestWorld.Default.Generate(42).Rgb, new ShapesWorldBenchmark(back).Generate(42).Rgb);
        Assert.Equal(WorldSpec.Default(), WorldSpec.Default());
        Assert.NotEqual(WorldSpec.Default(), WorldSpec.Default(splitSeed: 1));
    }

    [Fact]
    public void WorldJsonHoldsWhatAScorerNeeds()
    {
        var root = JsonNode.Parse(Spec.ToJson())!.AsObject();
        Assert.Equal(32, (int)root["image_size"]!);
        Assert.Equal("[0,0,0]", root["reserved_colours"]!["hazard"]!["black"]!.ToJsonString());
        Assert.Equal("[255,230,0]", root["reserved_colours"]!["hazard"]!["yellow"]!.ToJsonString());
        Assert.Equal("[255,0,255]", root["reserved_colours"]!["glitch"]!["magenta"]!.ToJsonString());
        Assert.Equal("[0,255,255]", root["reserved_colours"]!["glitch"]!["cyan"]!.ToJsonString());
        Assert.Equal(0.7, (double)root["defects"]!["hazard"]!["rate_by_shape"]!["triangle"]!);
        Assert.Equal(0.25, (double)root["defects"]!["glitch"]!["rate"]!);
        Assert.Equal("[0,0,14,14]", root["places"]!["top left"]!["box"]!.ToJsonString());
        Assert.Equal("a {colour} {shape} in the {place}", (string)root["prompt_grammar"]!["object"]!);
        Assert.Equal(80, (double)root["oracle"]!["reserved_distance"]!);
        Assert.Equal(128, root["splits"]!["test_prompts"]!.AsArray().Count);
    }

    [Fact]
    public void PaletteKeepsClearOfReservedColoursAndBlack()
    {
        foreach (var c in Spec.BackgroundPalette.Concat(Spec.ShapePalette))
        {
            foreach (var r in Spec.ReservedColours) Assert.True(c.Rgb.DistanceTo(r.Rgb) >= 100, $"{c.Name} near {r.Name}");
            Assert.True(c.Rgb.DistanceTo(new Rgb(0, 0, 0)) >= 150, $"{c.Name} is dark");
        }
        Assert.True(WorldSpec.HullFartherThan(Spec.BackgroundPalette.Concat(Spec.ShapePalette).Select(c => c.Rgb).ToList(), new Rgb(255, 230, 0), 95));
        Assert.False(WorldSpec.HullFartherThan([new Rgb(255, 0, 0), new Rgb(0, 255, 0)], new Rgb(128, 128, 0), 2));
    }

    [Fact]
    public void BadWorldFilesAreRefusedWithTheKeyNamed()
    {
        string Mutate(Action<JsonObject> change)
        {
            var root = JsonNode.Parse(Spec.ToJson())!.AsObject();
            change(root);
            var p = Path.Combine(_dir, "bad.json");
            File.WriteAllText(p, root.ToJsonString());
            return p;
        }
        var ex = Assert.Throws<InvalidInputException>(() => WorldSpec.Load(Mutate(r => r.Remove("image_size"))));
        Assert.Contains("'image_size'", ex.Message);
        Assert.Contains("bad.json", ex.Message);
        ex = Assert.Throws<InvalidInputException>(() => WorldSpec.Load(Mutate(r => r["shape_palette"]!["red"] = new JsonArray(250, 210, 20))));
        Assert.Contains("red", ex.Message);
        Assert.Contains("yellow", ex.Message);
        ex = Assert.Throws<InvalidInputException>(() => WorldSpec.Load(Mutate(r => r["shape_palette"]!["red"] = new JsonArray(1, 2))));
        Assert.Contains("shape_palette.red", ex.Message);
        ex = Assert.Throws<InvalidInputException>(() => WorldSpec.Load(Mutate(r => r["splits"]!["train_prompts"]!.AsArray().Add(Spec.Splits.TestPrompts[0]))));
        Assert.Contains("listed under Train", ex.Message);
        ex = Assert.Throws<InvalidInputException>(() => WorldSpec.Load(Mutate(r => r["places"]!["center"]!["box"] = new JsonArray(12, 12, 20, 20))));
        Assert.Contains("center", ex.Message);
        ex = Assert.Throws<InvalidInputException>(() => WorldSpec.Load(Mutate(r => r["format"] = "something")));
        Assert.Contains("'format'", ex.Message);
        ex = Assert.Throws<InvalidInputException>(() => WorldSpec.Load(Path.Combine(_dir, "none.json")));
        Assert.Contains("not found", ex.Message);
        File.WriteAllText(Path.Combine(_dir, "broken.json"), "{ nope");
        Assert.Contains("not valid JSON", Assert.Throws<InvalidInputException>(() => WorldSpec.Load(Path.Combine(_dir, "broken.json"))).Message);
    }
}
