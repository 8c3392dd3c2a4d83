using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using FocusNFix.IO;

namespace FocusNFix.ShapesWorld;

/// <summary>world.json: the complete, self-describing definition of the world, from which anyone can write a scorer.</summary>
public sealed partial class WorldSpec
{
    public const string FileName = "world.json";

    /// <summary>Writes world.json through a temporary file and a rename.</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

    /// <summary>Reads world.json (or the world.json inside a folder) and validates it.</summary>
    public static WorldSpec Load(string path)
    {
        if (Directory.Exists(path)) path = Path.Combine(path, FileName);
        return FromJson(IO.InputFile.ReadAllText(path, "world file"), path);
    }

    public string ToJson()
    {
        static JsonArray Rgb(Rgb c) => new(c.R, c.G, c.B);
        static JsonObject Palette(IEnumerable<NamedColour> cs) => Obj(cs.Select(c => (c.Name, (JsonNode?)Rgb(c.Rgb))));
        static JsonArray Strings(IEnumerable<string> s) => new(s.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
        static JsonArray Triples(IEnumerable<PromptObject> ts) => new(ts.Select(t => (JsonNode?)Strings([t.Colour, t.Shape, t.Place])).ToArray());
        var root = new JsonObject
        {
            ["format"] = FormatName,
            ["version"] = FormatVersion,
            ["image_size"] = ImageSize,
            ["image_layout"] = "bytes: row-major H x W x 3 RGB; floats: [3, H, W] in [0, 1] = byte / 255; masks: row-major H x W; boxes: [x0, y0, x1, y1) in pixels, ends exclusive; pixel (x, y) covers [x, x+1) x [y, y+1)",
            ["background_palette"] = Palette(BackgroundPalette),
            ["shape_palette"] = Palette(ShapePalette),
            ["reserved_colours"] = ReservedJson(),
            ["shapes"] = Strings(Shapes),
            ["shape_geometry"] = new JsonObject
            {
                ["size_min"] = ShapeSizeMin,
                ["size_max"] = ShapeSizeMax,
                ["center_jitter"] = CenterJitter,
                ["circle"] = "disc of diameter size centred on the object centre",
                ["square"] = "axis-aligned square of side size centred on the object centre",
                ["triangle"] = "apex at (cx, cy - size/2), base from (cx - size/2, cy + size/2) to (cx + size/2, cy + size/2)",
                ["antialias_samples_per_axis"] = SamplesPerAxis,
            },
            ["places"] = Obj(Places.Select(p => (p.Name, (JsonNode?)new JsonObject
            {
                ["box"] = new JsonArray(p.X0, p.Y0, p.X1, p.Y1),
                ["center"] = new JsonArray(p.CenterX, p.CenterY),
            }))),
            ["objects_per_scene"] = new JsonArray(MinObjects, MaxObjects),
            ["prompt_grammar"] = new JsonObject
            {
                ["object"] = PromptGrammar.ObjectTemplate,
                ["joiner"] = PromptGrammar.Joiner,
                ["background"] = PromptGrammar.BackgroundTemplate,
                ["order"] = "objects in the order of places above (also painting order); at most one object per place",
            },
            ["defects"] = DefectsJson(new JsonObject
            {
                ["hazard"] = new JsonObject
                {
                    ["pattern"] = "checker of cells x cells cells of cell_px pixels; cell (r, c) has the first colour when r + c is even",
                    ["colours"] = Strings(HazardColours.Select(c => c.Name)),
                    ["rate_by_shape"] = Obj(HazardRateByShape.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, (JsonNode?)kv.Value))),
                    ["cell_px"] = HazardCellPx,
                    ["cells"] = HazardCells,
                },
                ["glitch"] = new JsonObject
                {
                    ["pattern"] = "long_px x short_px patch of 1-pixel stripes across its long side, first colour on even stripes, centred on an object's edge pixel",
                    ["colours"] = Strings(GlitchColours.Select(c => c.Name)),
                    ["rate"] = GlitchRate,
                    ["long_px"] = GlitchLongPx,
                    ["short_px"] = GlitchShortPx,
                },
            }),
            ["defect_captions"] = new JsonObject
            {
                ["form"] = DefectCaptionSpec.Form,
                ["phrase_joiner"] = DefectCaptionSpec.PhraseJoiner,
                ["share_of_defective_scenes"] = Captions.ShareOfDefectiveScenes,
                ["rule"] = "base-model training data: per defect kind, a scene is captioned with its phrase with probability q = s p / (1 - s + s p) " +
                           "(s the share, p the kind's chance on that prompt: hazard 1 - prod(1 - rate of each object's shape), glitch and rot their rates), " +
                           "and a named scene is redrawn until it carries every kind it names; plain prompts keep the world's rates",
                ["phrases"] = Obj(Captions.Phrases.OrderBy(kv => kv.Key).Select(kv => (DefectKindNames.Name(kv.Key), (JsonNode?)JsonValue.Create(kv.Value)))),
            },
            ["oracle"] = new JsonObject
            {
                ["reserved_distance"] = Oracle.ReservedDistance,
                ["min_defect_pixels"] = Oracle.MinDefectPixels,
                ["colour_distance"] = Oracle.ColourDistance,
                ["min_place_fraction"] = Oracle.MinPlaceFraction,
                ["min_background_fraction"] = Oracle.MinBackgroundFraction,
                ["residue_distance"] = Oracle.ResidueDistance,
                ["distance"] = "Euclidean in 0..255 RGB",
                ["rules"] = new JsonObject
                {
                    ["defect"] = "mask: pixels within reserved_distance of any colour of the kind; present: >= min_defect_pixels mask pixels with at least one near each colour",
                    ["residue"] = "residue pixels: the mask, and pixels within residue_distance of any colour of the kind that are not within colour_distance of a palette colour (a faint, partly removed or one-colour defect); an image has residue when it has one; against a reference mask, residue share = residue pixels of the mask / mask pixels",
                    ["rot_fix"] = RotFixVerdict.Rule,
                    ["object_correct"] = "colour in place and shape decided and right; an undecided shape counts as wrong",
                    ["colour_in_place"] = "pixels within colour_distance of the object colour in the place's own region (its box minus the other places' boxes), divided by that region's area, >= min_place_fraction",
                    ["shape"] = $"pixels of the place box showing the colour (object) or the background colour (background); a blend within colour_distance of the segment background-to-colour at share a of the colour is object when a >= {(0.5 + global::FocusNFix.ShapesWorld.Oracle.EdgeDeadZone)}, background when a <= {(0.5 - global::FocusNFix.ShapesWorld.Oracle.EdgeDeadZone)}; others unknown; each shape fitted over sizes size_min-1..size_max+1 and centres within center +- (center_jitter+1) in steps of {(global::FocusNFix.ShapesWorld.Oracle.FitStep)} px, a pixel inside when its centre is; error = disagreeing known pixels; decided when best error <= {(global::FocusNFix.ShapesWorld.Oracle.MaxFitError)} x object pixels and runner-up error >= best + {(global::FocusNFix.ShapesWorld.Oracle.MinFitMargin)}; pixels in the box of another prompted object of the same colour are unknown too",
                    ["background"] = "fraction of all pixels within colour_distance of the background colour >= min_background_fraction",
                },
            },
            ["splits"] = new JsonObject
            {
                ["rule"] = SplitSpec.Rule,
                ["val_triples"] = Triples(Splits.ValTriples),
                ["test_triples"] = Triples(Splits.TestTriples),
                ["train_prompts"] = Strings(Splits.TrainPrompts),
                ["val_prompts"] = Strings(Splits.ValPrompts),
                ["test_prompts"] = Strings(Splits.TestPrompts),
            },
        };
        var json = root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        // Numeric arrays (colours, boxes, centres) and string arrays of up to 3 items (triples) on one line each,
        // for a file people read.
        static string OneLine(Match m) => "[" + Regex.Replace(m.Groups[1].Value, @",\s+", ", ") + "]";
        json = Regex.Replace(json, @"\[\s+(-?[0-9.eE+-]+(?:,\s+-?[0-9.eE+-]+)*)\s+\]", OneLine);
        json = Regex.Replace(json, @"\[\s+(""[^""\n]*""(?:,\s+""[^""\n]*""){0,2})\s+\]", OneLine);
        return json + "\n";
    }

    JsonObject ReservedJson()
    {
        static JsonObject Palette(IEnumerable<NamedColour> cs) => Obj(cs.Select(c => (c.Name, (JsonNode?)new JsonArray(c.Rgb.R, c.Rgb.G, c.Rgb.B))));
        var o = new JsonObject { ["hazard"] = Palette(HazardColours), ["glitch"] = Palette(GlitchColours) };
        if (Rot is { } rot) o["rot"] = Palette(rot.Colours);
        return o;
    }

    JsonObject DefectsJson(JsonObject defects)
    {
        if (Rot is { } rot)
            defects["rot"] = new JsonObject
            {
                ["pattern"] = RotSpec.Pattern,
                ["colours"] = new JsonArray(rot.Colours.Select(c => (JsonNode?)JsonValue.Create(c.Name)).ToArray()),
                ["rate"] = rot.Rate,
                ["area_fraction"] = new JsonArray(rot.MinAreaFraction, rot.MaxAreaFraction),
            };
        return defects;
    }

    static JsonObject Obj(IEnumerable<(string Key, JsonNode? Value)> entries)
    {
        var o = new JsonObject();
        foreach (var (k, v) in entries) o[k] = v;
        return o;
    }

    public static WorldSpec FromJson(string text, string source = "world.json")
    {
        JsonObject root;
        try { root = JsonNode.Parse(text) as JsonObject ?? throw new InvalidInputException($"{source}: expected a JSON object"); }
        catch (JsonException e) { throw new InvalidInputException($"{source}: not valid JSON: {e.Message}"); }
        var r = new Reader(source);
        if (r.String(root, "format") != FormatName) throw new InvalidInputException($"{source}: 'format' is not \"{FormatName}\"");
        int version = r.Int(root, "version");
        if (version != 1 && version != FormatVersion) throw new InvalidInputException($"{source}: version {version} is not supported (expected 1 or {FormatVersion})");
        var geometry = r.Object(root, "shape_geometry");
        var reserved = r.Object(root, "reserved_colours");
        var defects = r.Object(root, "defects");
        var hazard = r.Object(defects, "hazard", "defects.");
        var glitch = r.Object(defects, "glitch", "defects.");
        var oracle = r.Object(root, "oracle");
        var splits = r.Object(root, "splits");
        var counts = r.Array(root, "objects_per_scene");
        var hazardColours = r.Palette(r.Object(reserved, "hazard", "reserved_colours."), "reserved_colours.hazard");
        var glitchColours = r.Palette(r.Object(reserved, "glitch", "reserved_colours."), "reserved_colours.glitch");
        CheckColourOrder(r, hazard, hazardColours, "defects.hazard");
        CheckColourOrder(r, glitch, glitchColours, "defects.glitch");
        RotSpec? rot = null;
        var captions = DefectCaptionSpec.None;
        double residue = OracleSpec.DefaultResidueDistance;
        if (version >= 2)
        {
            if (defects["rot"] is not null)
            {
                var rotJson = r.Object(defects, "rot", "defects.");
                var rotColours = r.Palette(r.Object(reserved, "rot", "reserved_colours."), "reserved_colours.rot");
                CheckColourOrder(r, rotJson, rotColours, "defects.rot");
                var fraction = r.Doubles(rotJson, "area_fraction", "defects.rot.");
                if (fraction.Length != 2) throw r.Error("defects.rot.area_fraction", "[min, max]");
                rot = new RotSpec(rotColours, r.Double(rotJson, "rate", "defects.rot."), fraction[0], fraction[1]);
            }
            else if (reserved["rot"] is not null) throw r.Error("defects.rot", "a rot definition, since reserved_colours.rot is given");
            var cap = r.Object(root, "defect_captions");
            var phrases = r.Object(cap, "phrases", "defect_captions.").ToDictionary(
                kv => DefectKindNames.Parse(kv.Key, $"{source}: 'defect_captions.phrases.{kv.Key}'"),
                kv => r.StringValue(kv.Value, $"defect_captions.phrases.{kv.Key}"));
            captions = new DefectCaptionSpec(r.Double(cap, "share_of_defective_scenes", "defect_captions."), phrases);
            residue = r.Double(oracle, "residue_distance", "oracle.");
        }
        var spec = new WorldSpec
        {
            ImageSize = r.Int(root, "image_size"),
            BackgroundPalette = r.Palette(r.Object(root, "background_palette"), "background_palette"),
            ShapePalette = r.Palette(r.Object(root, "shape_palette"), "shape_palette"),
            HazardColours = hazardColours,
            GlitchColours = glitchColours,
            Shapes = r.Strings(root, "shapes"),
            Places = r.Object(root, "places").Select(kv =>
            {
                var p = kv.Value as JsonObject ?? throw r.Error($"places.{kv.Key}", "an object with box and center");
                var box = r.Ints(p, "box", $"places.{kv.Key}.");
                var centre = r.Doubles(p, "center", $"places.{kv.Key}.");
                if (box.Length != 4 || centre.Length != 2) throw r.Error($"places.{kv.Key}", "box [x0, y0, x1, y1] and center [x, y]");
                return new PlaceSpec(kv.Key, centre[0], centre[1], box[0], box[1], box[2], box[3]);
            }).ToArray(),
            ShapeSizeMin = r.Double(geometry, "size_min", "shape_geometry."),
            ShapeSizeMax = r.Double(geometry, "size_max", "shape_geometry."),
            CenterJitter = r.Double(geometry, "center_jitter", "shape_geometry."),
            SamplesPerAxis = r.Int(geometry, "antialias_samples_per_axis", "shape_geometry."),
            MinObjects = counts.Count == 2 ? r.IntValue(counts[0], "objects_per_scene[0]") : throw r.Error("objects_per_scene", "[min, max]"),
            MaxObjects = r.IntValue(counts[1], "objects_per_scene[1]"),
            HazardRateByShape = r.Object(hazard, "rate_by_shape", "defects.hazard.")
                .ToDictionary(kv => kv.Key, kv => r.DoubleValue(kv.Value, $"defects.hazard.rate_by_shape.{kv.Key}")),
            HazardCellPx = r.Int(hazard, "cell_px", "defects.hazard."),
            HazardCells = r.Int(hazard, "cells", "defects.hazard."),
            GlitchRate = r.Double(glitch, "rate", "defects.glitch."),
            GlitchLongPx = r.Int(glitch, "long_px", "defects.glitch."),
            GlitchShortPx = r.Int(glitch, "short_px", "defects.glitch."),
            Oracle = new OracleSpec(r.Double(oracle, "reserved_distance", "oracle."), r.Int(oracle, "min_defect_pixels", "oracle."),
                r.Double(oracle, "colour_distance", "oracle."), r.Double(oracle, "min_place_fraction", "oracle."),
                r.Double(oracle, "min_background_fraction", "oracle."), residue),
            Rot = rot,
            Captions = captions,
            Splits = new SplitSpec(r.Triples(splits, "val_triples"), r.Triples(splits, "test_triples"),
                r.Strings(splits, "train_prompts", "splits."), r.Strings(splits, "val_prompts", "splits."), r.Strings(splits, "test_prompts", "splits.")),
        };
        try { spec.Validate(); }
        catch (InvalidInputException e) { throw new InvalidInputException($"{source}: {e.Message}", e); }
        return spec;
    }

    static void CheckColourOrder(Reader r, JsonObject defect, IReadOnlyList<NamedColour> colours, string where)
    {
        var names = r.Strings(defect, "colours", where + ".");
        if (!names.SequenceEqual(colours.Select(c => c.Name)))
            throw r.Error($"{where}.colours", $"the reserved colours in the same order ({string.Join(", ", colours.Select(c => c.Name))})");
    }

    sealed class Reader(string source)
    {
        public InvalidInputException Error(string key, string expected) => new($"{source}: '{key}': expected {expected}");

        JsonNode Get(JsonObject o, string key, string prefix) => o[key] ?? throw Error(prefix + key, "a value (missing)");

        public JsonObject Object(JsonObject o, string key, string prefix = "") => Get(o, key, prefix) as JsonObject ?? throw Error(prefix + key, "an object");
        public JsonArray Array(JsonObject o, string key, string prefix = "") => Get(o, key, prefix) as JsonArray ?? throw Error(prefix + key, "an array");
        public string String(JsonObject o, string key, string prefix = "") => StringValue(Get(o, key, prefix), prefix + key);
        public int Int(JsonObject o, string key, string prefix = "") => IntValue(Get(o, key, prefix), prefix + key);
        public double Double(JsonObject o, string key, string prefix = "") => DoubleValue(Get(o, key, prefix), prefix + key);

        public string StringValue(JsonNode? n, string key) =>
            n is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Error(key, "a string");

        public int IntValue(JsonNode? n, string key)
        {
            double d = DoubleValue(n, key);
            return d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue ? (int)d : throw Error(key, "an integer");
        }

        public double DoubleValue(JsonNode? n, string key)
        {
            if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
                return double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture);
            throw Error(key, "a number");
        }

        public string[] Strings(JsonObject o, string key, string prefix = "") =>
            Array(o, key, prefix).Select((n, i) => StringValue(n, $"{prefix}{key}[{i}]")).ToArray();
        public int[] Ints(JsonObject o, string key, string prefix = "") =>
            Array(o, key, prefix).Select((n, i) => IntValue(n, $"{prefix}{key}[{i}]")).ToArray();
        public double[] Doubles(JsonObject o, string key, string prefix = "") =>
            Array(o, key, prefix).Select((n, i) => DoubleValue(n, $"{prefix}{key}[{i}]")).ToArray();

        public NamedColour[] Palette(JsonObject o, string where) => o.Select(kv =>
        {
            var c = kv.Value as JsonArray;
            var v = c?.Select((n, i) => IntValue(n, $"{where}.{kv.Key}[{i}]")).ToArray();
            if (v is null || v.Length != 3 || v.Any(x => x < 0 || x > 255)) throw Error($"{where}.{kv.Key}", "[r, g, b] with values 0..255");
            return new NamedColour(kv.Key, new Rgb((byte)v[0], (byte)v[1], (byte)v[2]));
        }).ToArray();

        public PromptObject[] Triples(JsonObject o, string key) => Array(o, key, "splits.").Select((n, i) =>
        {
            var t = n as JsonArray;
            if (t is null || t.Count != 3) throw Error($"splits.{key}[{i}]", "[colour, shape, place]");
            return new PromptObject(StringValue(t[0], $"splits.{key}[{i}][0]"), StringValue(t[1], $"splits.{key}[{i}][1]"), StringValue(t[2], $"splits.{key}[{i}][2]"));
        }).ToArray();
    }
}
