using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using FocusNFix.IO;
using FocusNFix.Schedulers;

namespace FocusNFix.Pipelines;

/// <summary>
/// How an image was generated, stored in its PNG as two text chunks: <c>parameters</c> in the A1111 infotext format
/// (what A1111's PNG Info, ComfyUI readers and image browsers show) and <c>focusnfix</c>, the same fields as JSON, exact
/// enough for <c>fnf sample --from-png</c> to re-create the image bit for bit.
/// </summary>
public sealed record GenerationInfo
{
    public const string ParametersKeyword = "parameters";
    public const string JsonKeyword = "focusnfix";
    public const int FormatVersion = 1;

    public required string Prompt { get; init; }
    public string NegativePrompt { get; init; } = "";
    public int PromptIndex { get; init; }
    public long Seed { get; init; }
    public int Steps { get; init; }
    public double GuidanceScale { get; init; }
    /// <summary>The CLI scheduler name (ddim, euler-a, ...); null: the pipeline folder's own scheduler.</summary>
    public string? Scheduler { get; init; }
    /// <summary>diffusers class of the scheduler that ran (for readers; <see cref="Scheduler"/> decides a re-run).</summary>
    public required string SchedulerClass { get; init; }
    public double Eta { get; init; }
    public int ClipSkip { get; init; }
    public int Height { get; init; }
    public int Width { get; init; }
    /// <summary>Full path of the pipeline folder.</summary>
    public required string Model { get; init; }
    /// <summary>Full path of the LoRA file or folder, or null.</summary>
    public string? Lora { get; init; }
    public double LoraScale { get; init; } = 1.0;
    public string Dtype { get; init; } = "float32";
    public string Device { get; init; } = "cpu";
    /// <summary>What the picture shows: sample (the generated image), heatmap, overlay, mask or diff (of that sample).</summary>
    public string Image { get; init; } = "sample";
    /// <summary>The evaluated method (base, focus-n-fix, ...) for fnf eval / demo images.</summary>
    public string? Method { get; init; }
    /// <summary>Safe Latent Diffusion's concept and settings, or null when the image was sampled without it.</summary>
    public SldOptions? Sld { get; init; }

    /// <summary>The fields of one image sampled by <paramref name="pipe"/> with <paramref name="options"/> and one seed.</summary>
    public static GenerationInfo Of(TextToImagePipeline pipe, string prompt, int promptIndex, long seed, SampleOptions options,
        int height, int width, string? scheduler = null, string? lora = null, double loraScale = 1.0, string? method = null) => new()
    {
        Prompt = prompt, NegativePrompt = options.NegativePrompt ?? "", PromptIndex = promptIndex, Seed = seed,
        Steps = options.Steps, GuidanceScale = options.GuidanceScale, Scheduler = scheduler, SchedulerClass = pipe.Scheduler.ClassName,
        Eta = options.Eta, ClipSkip = options.ClipSkip, Height = height, Width = width,
        Model = System.IO.Path.GetFullPath(pipe.Folder.Path), Lora = lora is null ? null : System.IO.Path.GetFullPath(lora), LoraScale = loraScale,
        Dtype = pipe.DType.ToString().ToLowerInvariant(), Device = pipe.Device.ToString(), Method = method, Sld = options.Sld,
        UseKarras = pipe.Scheduler is DpmSolverMultistepScheduler { UseKarrasSigmas: true },
    };

    bool UseKarras { get; init; }

    /// <summary>The same generation, describing another picture derived from it (heatmap, overlay, mask, diff).</summary>
    public GenerationInfo As(string image) => this with { Image = image };

    /// <summary>The two PNG text chunks (keyword, text).</summary>
    public IReadOnlyList<(string Keyword, string Text)> PngText() => new[] { (ParametersKeyword, ToA1111()), (JsonKeyword, ToJson()) };

    /// <summary>
    /// A1111's infotext: the prompt, "Negative prompt: ..." when there is one, then "Key: value" pairs; values holding a
    /// comma, colon or newline are JSON-quoted, as A1111's <c>quote()</c> does. Clip skip counts as in A1111 (1 = none).
    /// </summary>
    public string ToA1111()
    {
        var sb = new StringBuilder(Prompt);
        if (NegativePrompt.Length > 0) sb.Append("\nNegative prompt: ").Append(NegativePrompt);
        var p = new List<(string Key, string Value)>
        {
            ("Steps", Num(Steps)), ("Sampler", SamplerLabel()), ("CFG scale", Num(GuidanceScale)), ("Seed", Num(Seed)),
            ("Size", $"{Width}x{Height}"), ("Model", Name(Model)),
        };
        if (ClipSkip > 0) p.Add(("Clip skip", Num(ClipSkip + 1)));
        if (Eta != 0) p.Add(("Eta", Num(Eta)));
        if (Lora is not null) { p.Add(("Lora", Name(Lora))); p.Add(("Lora scale", Num(LoraScale))); }
        if (Image != "sample") p.Add(("Image", Image));
        if (Method is not null) p.Add(("Method", Method));
        if (Sld is { } sld)
        {
            var g = sld.Settings;
            p.Add(("SLD concept", sld.Concept));
            p.Add(("SLD", $"scale {Num(g.GuidanceScale)} warmup {Num(g.WarmupSteps)} threshold {Num(g.Threshold)} momentum {Num(g.MomentumScale)} beta {Num(g.MomentumBeta)}"));
        }
        sb.Append('\n').Append(string.Join(", ", p.Select(kv => $"{kv.Key}: {Quote(kv.Value)}")));
        return sb.ToString();
    }

    string SamplerLabel() => (Scheduler, SchedulerClass) switch
    {
        ("dpmpp-2m-karras", _) => "DPM++ 2M Karras",
        (null, "DPMSolverMultistepScheduler") when UseKarras => "DPM++ 2M Karras",
        (_, "DDIMScheduler") => "DDIM",
        (_, "DDPMScheduler") => "DDPM",
        (_, "EulerDiscreteScheduler") => "Euler",
        (_, "EulerAncestralDiscreteScheduler") => "Euler a",
        (_, "DPMSolverMultistepScheduler") => "DPM++ 2M",
        (_, "PNDMScheduler") => "PLMS",
        _ => SchedulerClass,
    };

    static readonly JsonSerializerOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    static string Quote(string v) => v.Contains(',') || v.Contains(':') || v.Contains('\n') ? JsonSerializer.Serialize(v, Relaxed) : v;
    static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);
    static string Name(string path) => System.IO.Path.GetFileNameWithoutExtension(path.TrimEnd('/', '\\'));

    public string ToJson()
    {
        var o = new JsonObject
        {
            ["software"] = "FocusNFix", ["format"] = FormatVersion, ["image"] = Image, ["method"] = Method,
            ["prompt"] = Prompt, ["negative_prompt"] = NegativePrompt, ["prompt_index"] = PromptIndex, ["seed"] = Seed,
            ["steps"] = Steps, ["guidance_scale"] = GuidanceScale, ["scheduler"] = Scheduler, ["scheduler_class"] = SchedulerClass,
            ["eta"] = Eta, ["clip_skip"] = ClipSkip, ["height"] = Height, ["width"] = Width, ["model"] = Model,
            ["lora"] = Lora, ["lora_scale"] = LoraScale, ["dtype"] = Dtype, ["device"] = Device,
            // diffusers' StableDiffusionPipelineSafe argument names.
            ["sld"] = Sld is not { } sld ? null : new JsonObject
            {
                ["safety_concept"] = sld.Concept, ["sld_guidance_scale"] = sld.Settings.GuidanceScale, ["sld_warmup_steps"] = sld.Settings.WarmupSteps,
                ["sld_threshold"] = sld.Settings.Threshold, ["sld_momentum_scale"] = sld.Settings.MomentumScale, ["sld_mom_beta"] = sld.Settings.MomentumBeta,
            },
        };
        return o.ToJsonString(Relaxed);
    }

    /// <summary>Parses our JSON chunk; <paramref name="source"/> names the file in errors. Every field is required.</summary>
    public static GenerationInfo FromJson(string json, string source)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new InvalidInputException($"{source}: '{JsonKeyword}' metadata is not a JSON object"); }
        catch (JsonException e) { throw new InvalidInputException($"{source}: '{JsonKeyword}' metadata is not valid JSON ({e.Message})"); }
        T Get<T>(string key, string expected, bool nullable = false)
        {
            if (!o.ContainsKey(key)) throw new InvalidInputException($"{source}: '{JsonKeyword}' metadata has no '{key}', expected {expected}");
            var n = o[key];
            if (n is null && nullable) return default!;
            if (n is JsonValue v && v.TryGetValue<T>(out var value)) return value;
            throw new InvalidInputException($"{source}: '{JsonKeyword}' metadata '{key}' is {n?.ToJsonString() ?? "null"}, expected {expected}");
        }
        int format = Get<int>("format", "an integer");
        if (format != FormatVersion) throw new InvalidInputException($"{source}: '{JsonKeyword}' metadata format {format}, expected {FormatVersion}");
        var info = new GenerationInfo
        {
            Image = Get<string>("image", "a string"), Method = Get<string?>("method", "a string or null", nullable: true),
            Prompt = Get<string>("prompt", "a string"), NegativePrompt = Get<string>("negative_prompt", "a string"),
            PromptIndex = Get<int>("prompt_index", "an integer"), Seed = Get<long>("seed", "an integer"),
            Steps = Get<int>("steps", "an integer"), GuidanceScale = Get<double>("guidance_scale", "a number"),
            Scheduler = Get<string?>("scheduler", "a scheduler name or null", nullable: true), SchedulerClass = Get<string>("scheduler_class", "a string"),
            Eta = Get<double>("eta", "a number"), ClipSkip = Get<int>("clip_skip", "an integer"),
            Height = Get<int>("height", "an integer"), Width = Get<int>("width", "an integer"),
            Model = Get<string>("model", "a pipeline folder path"), Lora = Get<string?>("lora", "a LoRA path or null", nullable: true),
            LoraScale = Get<double>("lora_scale", "a number"), Dtype = Get<string>("dtype", "a dtype name"), Device = Get<string>("device", "a device name"),
        };
        // Optional: images written before SLD was recorded have no 'sld' and were sampled without it.
        if (o["sld"] is JsonObject sldObj)
        {
            var sldSource = $"{source}: '{JsonKeyword}' metadata 'sld'";
            T Sld<T>(string key, string expected) => sldObj[key] is JsonValue v && v.TryGetValue<T>(out var value) ? value
                : throw new InvalidInputException($"{sldSource} has no valid '{key}', expected {expected}");
            var sld = new SldOptions(Sld<string>("safety_concept", "a string"), new SldSettings(Sld<double>("sld_guidance_scale", "a number"),
                Sld<int>("sld_warmup_steps", "an integer"), Sld<double>("sld_threshold", "a number"), Sld<double>("sld_momentum_scale", "a number"),
                Sld<double>("sld_mom_beta", "a number")));
            sld.Validate(key => $"{sldSource} '{key}'");
            info = info with { Sld = sld };
        }
        else if (o["sld"] is not null)
            throw new InvalidInputException($"{source}: '{JsonKeyword}' metadata 'sld' is {o["sld"]!.ToJsonString()}, expected an object or null");
        if (info.Scheduler is { } s && !SchedulerFactory.Names.Contains(s))
            throw new InvalidInputException($"{source}: '{JsonKeyword}' metadata 'scheduler' = '{s}', expected one of {string.Join(", ", SchedulerFactory.Names)} or null");
        return info;
    }

    /// <summary>Reads the <c>focusnfix</c> chunk of a PNG written by fnf.</summary>
    public static GenerationInfo FromPng(string path)
    {
        var text = Images.ReadPngText(path);
        if (!text.TryGetValue(JsonKeyword, out var json))
            throw new InvalidInputException($"{path}: the PNG has no '{JsonKeyword}' text chunk (only images written by fnf carry one; found: {(text.Count == 0 ? "no text chunks" : string.Join(", ", text.Keys))})");
        return FromJson(json, path);
    }
}
