using System.Text.Json;
using System.Text.Json.Nodes;
using FocusNFix.IO;
using FocusNFix.Rewards;
using FocusNFix.ShapesWorld;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FocusNFix.WorldModels;

/// <summary>The judge's layers. Its vocabulary and places come from the world it was trained for (world.json beside it).</summary>
/// <param name="TrunkChannels">Full-resolution 3x3 convolutions (replicate padding, SiLU) over the whole image.</param>
/// <param name="CropChannels">Stride-2 3x3 convolutions (SiLU) over each place's crop of the trunk features.</param>
/// <param name="Hidden">Width of the per-place hidden layer (shared weights plus a learned per-place embedding).</param>
/// <param name="CropSize">Side of the square window around each place centre (the world's largest place box).</param>
public sealed record JudgeConfig(IReadOnlyList<int> TrunkChannels, IReadOnlyList<int> CropChannels, int Hidden, int CropSize)
{
    public const string ClassName = "FocusNFixAlignmentJudge";
    public const string None = "none";

    public static JudgeConfig For(WorldSpec spec) => new([24, 32], [48, 64], 96, spec.Places.Max(p => Math.Max(p.X1 - p.X0, p.Y1 - p.Y0)));

    internal void Validate(string source, WorldSpec? spec)
    {
        if (TrunkChannels.Count == 0 || CropChannels.Count == 0 || TrunkChannels.Concat(CropChannels).Any(c => c < 1 || c > 4096))
            throw new InvalidInputException($"{source}: trunk_channels [{string.Join(", ", TrunkChannels)}], crop_channels [{string.Join(", ", CropChannels)}]: expected one or more widths in 1..4096 each");
        if (Hidden < 1 || Hidden > 65536) throw new InvalidInputException($"{source}: hidden {Hidden}: expected 1..65536");
        if (CropSize < 2 || (spec != null && CropSize > spec.ImageSize))
            throw new InvalidInputException($"{source}: crop_size {CropSize}: expected 2..{spec?.ImageSize.ToString() ?? "image size"}");
    }

    public string ToJson(WorldSpec spec) => new JsonObject
    {
        ["_class_name"] = ClassName,
        ["world_file"] = WorldSpec.FileName,
        ["image_size"] = spec.ImageSize,
        ["colours"] = Names(spec.ShapePalette.Select(c => c.Name).Append(None)),
        ["shapes"] = Names(spec.Shapes.Append(None)),
        ["backgrounds"] = Names(spec.BackgroundPalette.Select(c => c.Name)),
        ["places"] = Names(spec.Places.Select(p => p.Name)),
        ["trunk_channels"] = new JsonArray(TrunkChannels.Select(c => (JsonNode)c).ToArray()),
        ["crop_channels"] = new JsonArray(CropChannels.Select(c => (JsonNode)c).ToArray()),
        ["hidden"] = Hidden,
        ["crop_size"] = CropSize,
        ["alignment"] = "fraction of prompted objects whose place is predicted with the prompted colour and shape",
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    static JsonArray Names(IEnumerable<string> names) => new(names.Select(n => (JsonNode)n).ToArray());

    public static JudgeConfig FromJson(JsonConfig c, WorldSpec? spec)
    {
        var cls = c.String("_class_name");
        if (cls != ClassName)
            throw new InvalidInputException($"{c.Source}: _class_name is '{cls ?? "missing"}', not an alignment judge (expected '{ClassName}')" +
                (cls == RegionRewardConfig.ClassName ? "; this folder holds a region reward model: load it with RegionRewardModel.FromPretrained" : ""));
        var cfg = new JudgeConfig(
            c.IntList("trunk_channels") ?? throw new InvalidInputException($"{c.Source}: required key 'trunk_channels' is missing"),
            c.IntList("crop_channels") ?? throw new InvalidInputException($"{c.Source}: required key 'crop_channels' is missing"),
            c.RequireInt("hidden"), c.RequireInt("crop_size"));
        cfg.Validate(c.Source, spec);
        if (spec != null)
        {
            void Same(string key, IEnumerable<string> expected)
            {
                var got = c.StringList(key);
                if (got != null && !got.SequenceEqual(expected))
                    throw new InvalidInputException($"{c.Source}: '{key}' [{string.Join(", ", got)}] does not match its world file [{string.Join(", ", expected)}]");
            }
            Same("colours", spec.ShapePalette.Select(x => x.Name).Append(None));
            Same("shapes", spec.Shapes.Append(None));
            Same("backgrounds", spec.BackgroundPalette.Select(x => x.Name));
            Same("places", spec.Places.Select(p => p.Name));
            if (c.Has("image_size") && c.Int("image_size", 0) != spec.ImageSize)
                throw new InvalidInputException($"{c.Source}: image_size {c.Int("image_size", 0)} does not match its world file ({spec.ImageSize})");
        }
        return cfg;
    }
}

/// <summary>What the judge sees in one place: a colour and a shape, each possibly "none", with their probabilities.</summary>
public sealed record PlacePrediction(string Place, string Colour, double ColourProbability, string Shape, double ShapeProbability)
{
    public bool Empty => Colour == JudgeConfig.None;
}

/// <summary>One prompted object as judged.</summary>
public sealed record JudgedObject(PromptObject Object, PlacePrediction Seen)
{
    public bool ColourCorrect => Seen.Colour == Object.Colour;
    public bool ShapeCorrect => Seen.Shape == Object.Shape;
    public bool Correct => ColourCorrect && ShapeCorrect;
}

/// <summary>
/// The judge's verdict on one image against its prompt. <see cref="Alignment"/> is the fraction of prompted objects
/// judged correct (colour and shape in the prompted place); the background and the unprompted places are reported but
/// not part of it.
/// </summary>
public sealed record JudgeVerdict(SceneDescription Prompt, IReadOnlyList<JudgedObject> Objects, string Background, double BackgroundProbability,
    IReadOnlyList<PlacePrediction> Places)
{
    public bool BackgroundCorrect => Background == Prompt.Background;
    public double Alignment => Objects.Count == 0 ? 0 : Objects.Count(o => o.Correct) / (double)Objects.Count;
    public bool AllObjectsCorrect => Objects.All(o => o.Correct);
}

/// <summary>The judge's raw outputs: per place colour logits [B,P,C+1] and shape logits [B,P,S+1] ("none" last), background logits [B,NB].</summary>
public sealed record JudgeLogits(Tensor Colour, Tensor Shape, Tensor Background) : IDisposable
{
    public void Dispose() { Colour.Dispose(); Shape.Dispose(); Background.Dispose(); }
}

/// <summary>
/// The alignment judge of ShapesWorld: a small CNN that predicts, for each of the world's places, the colour (a shape
/// palette colour or none) and the shape (a world shape or none) of the object there, and the background colour; a prompt
/// is then checked against those predictions. Focus-N-Fix never optimises it: it measures prompt alignment as a model
/// would, beside the oracle's exact rule. Layers: a full-resolution trunk (3x3 convolutions, replicate padding, SiLU);
/// for each place a window of crop_size px around its centre (shifted inside the image) cut from the trunk features, then
/// stride-2 convolutions, a hidden layer shared by all places plus a per-place embedding, and colour and shape heads; the
/// background head reads the trunk features' global mean and max. Images of another size are resized (bilinear) to the
/// world's size first.
/// </summary>
public sealed class AlignmentJudge : nn.Module<Tensor, JudgeLogits>
{
    public const string ConfigFile = "config.json", WeightsBase = "model";

    readonly ModuleList<Conv2d> trunk = new();
    readonly ModuleList<Conv2d> crop_convs = new();
    readonly Linear fc;
    readonly Parameter place_embedding;
    readonly Linear colour_head, shape_head, background_head;
    readonly (int X, int Y)[] _crops;

    public JudgeConfig Config { get; }
    public WorldSpec World { get; }
    public IReadOnlyList<string> Colours { get; }
    public IReadOnlyList<string> Shapes { get; }
    public IReadOnlyList<string> Backgrounds { get; }

    public AlignmentJudge(WorldSpec world, JudgeConfig? config = null) : base(nameof(AlignmentJudge))
    {
        config ??= JudgeConfig.For(world);
        config.Validate("alignment judge config", world);
        World = world;
        Config = config;
        Colours = world.ShapePalette.Select(c => c.Name).Append(JudgeConfig.None).ToArray();
        Shapes = world.Shapes.Append(JudgeConfig.None).ToArray();
        Backgrounds = world.BackgroundPalette.Select(c => c.Name).ToArray();
        int size = world.ImageSize, crop = config.CropSize;
        _crops = world.Places.Select(p => (
            Math.Clamp((int)Math.Round(p.CenterX - crop / 2.0, MidpointRounding.AwayFromZero), 0, size - crop),
            Math.Clamp((int)Math.Round(p.CenterY - crop / 2.0, MidpointRounding.AwayFromZero), 0, size - crop))).ToArray();

        long ch = 3;
        foreach (var c in config.TrunkChannels) { trunk.Add(nn.Conv2d(ch, c, 3)); ch = c; }
        long trunkCh = ch, side = crop;
        foreach (var c in config.CropChannels) { crop_convs.Add(nn.Conv2d(ch, c, 3, stride: 2, padding: 1)); ch = c; side = (side - 1) / 2 + 1; }
        fc = nn.Linear(ch * side * side, config.Hidden);
        place_embedding = new Parameter(zeros(world.Places.Count, config.Hidden));
        colour_head = nn.Linear(config.Hidden, Colours.Count);
        shape_head = nn.Linear(config.Hidden, Shapes.Count);
        background_head = nn.Linear(2 * trunkCh, Backgrounds.Count);
        RegisterComponents();
    }

    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>Logits for images [B,3,H,W] in [0,1] (moved to the judge's device and dtype).</summary>
    public override JudgeLogits forward(Tensor images)
    {
        RewardInputs.CheckImages(images, "alignment judge");
        using var scope = NewDisposeScope();
        var w = fc.weight!;
        var x = images.to(w.dtype, w.device);
        int size = World.ImageSize;
        if (x.shape[2] != size || x.shape[3] != size)
            x = F.interpolate(x, new long[] { size, size }, mode: InterpolationMode.Bilinear, align_corners: false);
        x = x * 2 - 1;
        foreach (var conv in trunk) x = F.silu(conv.call(F.pad(x, new long[] { 1, 1, 1, 1 }, PaddingModes.Replicate)));

        long b = x.shape[0];
        int crop = Config.CropSize, places = _crops.Length;
        var crops = stack(_crops.Select(c => x[.., .., TensorIndex.Slice(c.Y, c.Y + crop), TensorIndex.Slice(c.X, c.X + crop)]).ToArray(), 1)
            .reshape(b * places, x.shape[1], crop, crop);                                  // [B*P, C, crop, crop]
        var y = crops;
        foreach (var conv in crop_convs) y = F.silu(conv.call(y));
        var hidden = fc.call(y.flatten(1)).reshape(b, places, -1) + place_embedding;     // [B, P, hidden]
        hidden = F.silu(hidden);
        var colour = colour_head.call(hidden);
        var shape = shape_head.call(hidden);
        var pooled = cat(new[] { x.mean(new long[] { 2, 3 }), x.amax(new long[] { 2, 3 }) }, 1);
        var background = background_head.call(pooled);
        return new JudgeLogits(colour.MoveToOuterDisposeScope(), shape.MoveToOuterDisposeScope(), background.MoveToOuterDisposeScope());
    }

    /// <summary>What the judge sees in each image: per place predictions, and the background with its probability.</summary>
    public (PlacePrediction[] Places, string Background, double BackgroundProbability)[] Predict(Tensor images)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var logits = forward(images);
        var pc = logits.Colour.softmax(-1).to(float32).cpu();
        var ps = logits.Shape.softmax(-1).to(float32).cpu();
        var pb = logits.Background.softmax(-1).to(float32).cpu();
        var (cMax, cArg) = pc.max(-1);
        var (sMax, sArg) = ps.max(-1);
        var (bMax, bArg) = pb.max(-1);
        var cm = cMax.data<float>().ToArray(); var ca = cArg.data<long>().ToArray();
        var sm = sMax.data<float>().ToArray(); var sa = sArg.data<long>().ToArray();
        var bm = bMax.data<float>().ToArray(); var ba = bArg.data<long>().ToArray();
        int n = (int)images.shape[0], places = _crops.Length;
        var result = new (PlacePrediction[], string, double)[n];
        for (int i = 0; i < n; i++)
        {
            var preds = new PlacePrediction[places];
            for (int p = 0; p < places; p++)
            {
                int k = i * places + p;
                preds[p] = new PlacePrediction(World.Places[p].Name, Colours[(int)ca[k]], cm[k], Shapes[(int)sa[k]], sm[k]);
            }
            result[i] = (preds, Backgrounds[(int)ba[i]], bm[i]);
        }
        return result;
    }

    /// <summary>Judges each image against its prompt (one per image, or one for all); prompts follow the world's grammar.</summary>
    public JudgeVerdict[] Judge(Tensor images, IReadOnlyList<string> prompts)
    {
        var list = RewardInputs.PromptsFor(images.shape[0], prompts, "alignment judge");
        var descriptions = list.Select(p => PromptGrammar.Parse(p, World)).ToArray();
        return Judge(images, descriptions);
    }

    public JudgeVerdict[] Judge(Tensor images, IReadOnlyList<SceneDescription> prompts)
    {
        if (prompts.Count != images.shape[0])
            throw new InvalidInputException($"alignment judge: {prompts.Count} prompts for {images.shape[0]} images");
        var seen = Predict(images);
        return prompts.Select((d, i) => new JudgeVerdict(d,
            d.Objects.Select(o => new JudgedObject(o, seen[i].Places[World.PlaceIndex(o.Place)])).ToArray(),
            seen[i].Background, seen[i].BackgroundProbability, seen[i].Places)).ToArray();
    }

    /// <summary>Mean alignment [B] over <see cref="Judge(Tensor, IReadOnlyList{string})"/>'s verdicts, as a tensor.</summary>
    public Tensor Alignment(Tensor images, IReadOnlyList<string> prompts) =>
        tensor(Judge(images, prompts).Select(v => (float)v.Alignment).ToArray());

    /// <summary>Writes config.json, world.json and model.safetensors (float32), each atomically.</summary>
    public void SavePretrained(string folder)
    {
        Directory.CreateDirectory(folder);
        var weights = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();
        foreach (var (k, v) in state_dict()) weights[k] = v.detach().to(float32).cpu();
        Safetensors.Save(Path.Combine(folder, WeightsBase + ".safetensors"), weights,
            new Dictionary<string, string> { ["format"] = "pt", ["focusnfix_class"] = JudgeConfig.ClassName });
        AtomicFile.WriteAllText(Path.Combine(folder, WorldSpec.FileName), World.ToJson());
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigFile), Config.ToJson(World) + "\n");
    }

    /// <summary>Loads a folder written by <see cref="SavePretrained"/> (strict weights) on the CPU, frozen and in eval mode.</summary>
    public static AlignmentJudge FromPretrained(string folder) => RewardInputs.Load("alignment judge", folder, () =>
    {
        IO.InputFile.RequireFolder(folder, "folder");
        var configPath = Path.Combine(folder, ConfigFile);
        var json = JsonConfig.Load(configPath);
        JudgeConfig.FromJson(json, null);  // class and layer checks first, so a wrong folder is named as such
        var world = WorldSpec.Load(Path.Combine(folder, Path.GetFileName(json.String("world_file") ?? WorldSpec.FileName)));
        var judge = new AlignmentJudge(world, JudgeConfig.FromJson(json, world));
        StateDict.LoadFile(judge, WeightFiles.Find(folder, WeightsBase));
        RewardInputs.Freeze(judge);
        return judge;
    });
}
