using System.Text.Json.Nodes;
using FocusNFix.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.Rewards;

/// <summary>
/// Where the crop of a resize-then-center-crop lies: the input is Height x Width, it is resized to
/// ResizedHeight x ResizedWidth, and the CropHeight x CropWidth window at (Top, Left) of the resized image is kept.
/// </summary>
public sealed record ClipCrop(long Height, long Width, long ResizedHeight, long ResizedWidth, long Top, long Left, long CropHeight, long CropWidth)
{
    /// <summary>
    /// Maps a map over the crop ([B,C,h,w], any h,w) back onto the input images: [B,C,Height,Width], zero outside
    /// the cropped window. Bilinear, so it stays differentiable.
    /// </summary>
    public Tensor ToImage(Tensor cropMap)
    {
        using var scope = NewDisposeScope();
        var x = cropMap;
        if (x.shape[2] != CropHeight || x.shape[3] != CropWidth)
            x = nn.functional.interpolate(x, new[] { CropHeight, CropWidth }, mode: InterpolationMode.Bilinear, align_corners: false);
        x = nn.functional.pad(x, new[] { Left, ResizedWidth - Left - CropWidth, Top, ResizedHeight - Top - CropHeight });
        if (ResizedHeight != Height || ResizedWidth != Width)
            x = nn.functional.interpolate(x, new[] { Height, Width }, mode: InterpolationMode.Bilinear, align_corners: false);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// What transformers' CLIPImageProcessor does before a CLIP vision tower, as tensor operations: resize so the
/// shortest side is <see cref="ShortestEdge"/> (bicubic), center crop <see cref="CropSize"/> square, normalise
/// with <see cref="Mean"/> and <see cref="Std"/>. The processor works on uint8 PIL images with PIL's bicubic
/// filter; here the [0,1] floats are resized by torch's antialiased bicubic (PIL's kernel, a = -0.5), which
/// keeps the gradient. Nothing is rounded or clamped, so a pixel value differs from Python's by up to the
/// uint8 rounding (1/255) plus the filters' small difference.
/// </summary>
public sealed record ClipPreprocess(int ShortestEdge, int CropSize, double[] Mean, double[] Std)
{
    /// <summary>OPENAI_CLIP_MEAN: every CLIP checkpoint used here (OpenAI, OpenCLIP/LAION, PickScore, the safety checker).</summary>
    public static readonly double[] OpenAiMean = { 0.48145466, 0.4578275, 0.40821073 };
    public static readonly double[] OpenAiStd = { 0.26862954, 0.26130258, 0.27577711 };

    /// <summary>The processor of the OpenAI CLIP checkpoints at <paramref name="size"/> (224 for ViT-B/32, ViT-L/14, ViT-H/14).</summary>
    public static ClipPreprocess OpenAi(int size) => new(size, size, OpenAiMean, OpenAiStd);

    /// <summary>
    /// Reads <c>preprocessor_config.json</c> in <paramref name="folder"/> when there is one (keys size /
    /// shortest_edge, crop_size, image_mean, image_std); otherwise <see cref="OpenAi"/> at <paramref name="imageSize"/>.
    /// The crop must equal the vision tower's image_size.
    /// </summary>
    public static ClipPreprocess Load(string folder, int imageSize)
    {
        var path = Path.Combine(folder, "preprocessor_config.json");
        if (!File.Exists(path)) return OpenAi(imageSize);
        var json = JsonConfig.Load(path);
        int crop = Side(json, "crop_size", "height", imageSize);
        int shortest = Side(json, "size", "shortest_edge", crop);
        var mean = json.DoubleList("image_mean") ?? OpenAiMean;
        var std = json.DoubleList("image_std") ?? OpenAiStd;
        if (json.Bool("do_center_crop", true) == false) crop = shortest;
        var p = new ClipPreprocess(shortest, crop, mean, std);
        p.Validate(path);
        if (crop != imageSize)
            throw new InvalidInputException($"{path}: crop size {crop} does not match the vision tower's image_size {imageSize}");
        return p;
    }

    static int Side(JsonConfig json, string key, string innerKey, int fallback) => json.Root[key] switch
    {
        null => fallback,
        JsonObject _ => json.Child(key)!.Int(innerKey, json.Child(key)!.Int("height", fallback)),
        _ => json.Int(key, fallback),
    };

    public void Validate(string source = "ClipPreprocess")
    {
        if (ShortestEdge <= 0 || CropSize <= 0)
            throw new InvalidInputException($"{source}: resize {ShortestEdge} and crop {CropSize} must be positive");
        if (CropSize > ShortestEdge)
            throw new InvalidInputException($"{source}: crop {CropSize} is larger than the resized shortest side {ShortestEdge}");
        if (Mean.Length != 3 || Std.Length != 3 || Std.Any(s => !(s > 0)))
            throw new InvalidInputException($"{source}: image_mean and image_std need 3 values each, std positive");
    }

    /// <summary>
    /// The geometry for an input of <paramref name="height"/> x <paramref name="width"/>: the long side becomes
    /// int(ShortestEdge * long / short) (truncated, as transformers does); the crop starts at floor((resized - crop) / 2).
    /// </summary>
    public ClipCrop Geometry(long height, long width)
    {
        long rh, rw;
        if (height <= width) { rh = ShortestEdge; rw = (long)(ShortestEdge * (double)width / height); }
        else { rw = ShortestEdge; rh = (long)(ShortestEdge * (double)height / width); }
        return new ClipCrop(height, width, rh, rw, (rh - CropSize) / 2, (rw - CropSize) / 2, CropSize, CropSize);
    }

    /// <summary>[B,3,H,W] in [0,1] to the tower's normalised [B,3,CropSize,CropSize], differentiably, on the images' device and dtype.</summary>
    public Tensor Apply(Tensor images)
    {
        RewardInputs.CheckImages(images, "CLIP preprocessing");
        Validate();
        using var scope = NewDisposeScope();
        var g = Geometry(images.shape[2], images.shape[3]);
        var x = images;
        if (g.ResizedHeight != g.Height || g.ResizedWidth != g.Width)
            x = nn.functional.interpolate(x, new[] { g.ResizedHeight, g.ResizedWidth }, mode: InterpolationMode.Bicubic,
                align_corners: false, antialias: true);
        x = x.narrow(2, g.Top, g.CropHeight).narrow(3, g.Left, g.CropWidth);
        var mean = torch.tensor(Mean, dtype: x.dtype, device: x.device).view(1, 3, 1, 1);
        var std = torch.tensor(Std, dtype: x.dtype, device: x.device).view(1, 3, 1, 1);
        return ((x - mean) / std).MoveToOuterDisposeScope();
    }

    /// <summary>Shorthand: <c>new ClipPreprocess(size, size, mean, std).Apply(images)</c>.</summary>
    public static Tensor Apply(Tensor images, int size, double[] mean, double[] std) => new ClipPreprocess(size, size, mean, std).Apply(images);
}
