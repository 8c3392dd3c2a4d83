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
    public void RotCaptionsAndResidueAreInWorldJson()
    {
        var root = JsonNode.Parse(Spec.ToJson())!.AsObject();
        Assert.Equal(2, (int)root["version"]!);
        Assert.Equal("[45,255,0]", root["reserved_colours"]!["rot"]!["lime"]!.ToJsonString());
        Assert.Equal(0.3, (double)root["defects"]!["rot"]!["rate"]!);
        Assert.Equal("[0.3,0.6]", root["defects"]!["rot"]!["area_fraction"]!.ToJsonString());
        Assert.Equal(0.5, (double)root["defect_captions"]!["share_of_defective_scenes"]!);
        Assert.Equal("rot", (string)root["defect_captions"]!["phrases"]!["rot"]!);
        Assert.Equal("a hazard mark", (string)root["defect_captions"]!["phrases"]!["hazard"]!);
        Assert.Equal(95, (double)root["oracle"]!["residue_distance"]!);
        var back = WorldSpec.FromJson(Spec.ToJson());
        Assert.Equal(Spec.Rot, back.Rot with { Colours = Spec.Rot!.Colours });
        Assert.Equal(Spec.Rot.Colours, back.Rot!.Colours);
        Assert.Equal(Spec.Captions.Phrases.OrderBy(k => k.Key), back.Captions.Phrases.OrderBy(k => k.Key));
        // The rot colour stays clear of the palette's blends even at the residue distance, and of the other kinds.
        var palette = Spec.BackgroundPalette.Concat(Spec.ShapePalette).Select(c => c.Rgb).ToList();
        Assert.True(WorldSpec.HullFartherThan(palette, new Rgb(45, 255, 0), Spec.Oracle.ResidueDistance + 1));
        foreach (var c in Spec.HazardColours.Concat(Spec.GlitchColours)) Assert.True(c.Rgb.DistanceTo(new Rgb(45, 255, 0)) > 2 * Spec.Oracle.ResidueDistance);
    }

    [Fact]
    public void TheBundledWorldIsTheDefaultWorldWithRotAndCaptions()
    {
        // The bundled models were trained on the world `fnf world spec` writes: rot on and defects named in captions.
        var path = Path.Combine(Golden.Root, "models", "shapesworld", WorldSpec.FileName);
        var bundled = WorldSpec.Load(path);
        // The file's descriptive texts (rules, patterns) are the current ones too.
        Assert.Equal(bundled.ToJson(), File.ReadAllText(path));
        Assert.Equal(Spec, bundled);
        Assert.True(bundled.Rot!.Rate > 0);
        Assert.True(bundled.Captions.ShareOfDefectiveScenes > 0);
    }

    [Fact]
    public void VersionOneWorldFilesLoadAsWorldsWithoutRot()
    {
        var root = JsonNode.Parse(Spec.ToJson())!.AsObject();
        root["version"] = 1;
        root["reserved_colours"]!.AsObject().Remove("rot");
        root["defects"]!.AsObject().Remove("rot");
        root.Remove("defect_captions");
        root["oracle"]!.AsObject().Remove("residue_distance");
        var path = Path.Combine(_dir, "v1.json");
        File.WriteAllText(path, root.ToJsonString());
        var v1 = WorldSpec.Load(path);
        Assert.Null(v1.Rot);
        Assert.Equal(0, v1.Captions.ShareOfDefectiveScenes);
        Assert.Equal([DefectKind.Hazard, DefectKind.Glitch], v1.DefectKinds);
        Assert.Equal(Spec.With(null, DefectCaptionSpec.None), v1);
        Assert.Equal(new ShapesWorldBenchmark(v1).Generate(5).HazardMask, TestWorld.Default.Generate(5).HazardMask);
        Assert.Contains("no rot", Assert.Throws<InvalidInputException>(() => v1.Colours(DefectKind.Rot)).Message);
    }

    [Fact]
    public void BadRotCaptionAndResidueValuesAreRefusedWithTheKeyNamed()
    {
        string Mutate(Action<JsonObject> change)
        {
            var root = JsonNode.Parse(Spec.ToJson())!.AsObject();
            change(root);
            var p = Path.Combine(_dir, "bad.json");
            File.WriteAllText(p, root.ToJsonString());
            return p;
        }
        string Refused(Action<JsonObject> change) => Assert.Throws<InvalidInputException>(() => WorldSpec.Load(Mutate(change))).Message;
        Assert.Contains("rot rate 1.5", Refused(r => r["defects"]!["rot"]!["rate"] = 1.5));
        Assert.Contains("area_fraction [0.7, 0.3]", Refused(r => r["defects"]!["rot"]!["area_fraction"] = new JsonArray(0.7, 0.3)));
        Assert.Contains("'defects.rot.area_fraction'", Refused(r => r["defects"]!["rot"]!["area_fraction"] = new JsonArray(0.3)));
        Assert.Contains("'defects.rot.colours'", Refused(r => r["defects"]!["rot"]!["colours"] = new JsonArray("green")));
        Assert.Contains("share_of_defective_scenes 1", Refused(r => r["defect_captions"]!["share_of_defective_scenes"] = 1));
        Assert.Contains("'defect_captions.phrases.smudge'", Refused(r => r["defect_captions"]!["phrases"]!["smudge"] = "a smudge"));
        Assert.Contains("defect_captions.phrases.rot", Refused(r => r["defect_captions"]!["phrases"]!["rot"] = "Rot!"));
        Assert.Contains("'defect_captions'", Refused(r => r.Remove("defect_captions")));
        // A wider residue distance would reach the palette's blends (yellow is 106 from them).
        Assert.Contains("residue_distance", Refused(r => r["oracle"]!["residue_distance"] = 110));
        Assert.Contains("residue_distance", Refused(r => r["oracle"]!["residue_distance"] = 60));
        // A rot colour near green, or near yellow, is refused.
        Assert.Contains("lime", Refused(r => r["reserved_colours"]!["rot"]!["lime"] = new JsonArray(0, 200, 40)));
        Assert.Contains("lime", Refused(r => r["reserved_colours"]!["rot"]!["lime"] = new JsonArray(150, 255, 0)));
        Assert.Contains("'defects.rot'", Refused(r => r["defects"]!.AsObject().Remove("rot")));
        Assert.Contains("version 3", Refused(r => r["version"] = 3));
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
