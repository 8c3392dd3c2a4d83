using System.Globalization;

namespace FocusNFix.Models;

/// <summary>
/// Parameter counts computed from a config before any tensor is allocated, so that a config asking for an
/// implausible model (a typo like 100000 channels asks for well over 100 GB) is refused with a message naming
/// the file and its size fields, instead of swapping the machine to death or dying in the allocator.
/// The counts are exact for the UNet, the VAE and the CLIP text model as built here (tests compare them with
/// the built models); the CLIP vision count covers its transformer and embeddings.
/// </summary>
/// <remarks>
/// The limit: models are built in float32 (then cast), and loading holds the weights file's tensors beside the
/// model, so a model whose float32 parameters exceed the machine's memory cannot load. The cap is the smaller of
/// 64 GiB (over four times SDXL's UNet + text encoders + VAE, about 14 GiB in float32) and the memory the .NET
/// runtime reports as available to this process (physical memory or the container limit).
/// </remarks>
public static class ModelSizeEstimate
{
    public const long FixedLimitBytes = 64L << 30;
    /// <summary>The largest image side (pixels) sampling accepts: 8192, 4x SDXL's native size.</summary>
    public const int MaxImageSide = 8192;

    /// <summary>The parameter-memory limit in bytes (float32): min(64 GiB, memory available to the process).</summary>
    public static long LimitBytes
    {
        get
        {
            long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            return available > 0 ? Math.Min(FixedLimitBytes, available) : FixedLimitBytes;
        }
    }

    // Layer counts; doubles so that an absurd config cannot overflow (checked below against the limit anyway).
    static double Conv(double cin, double cout, double k) => cin * cout * k * k + cout;
    static double Linear(double cin, double cout, bool bias = true) => cin * cout + (bias ? cout : 0);
    static double Norm(double c) => 2 * c;

    static double Resnet(double cin, double cout, double? temb) =>
        Norm(cin) + Conv(cin, cout, 3) + (temb is { } t ? Linear(t, cout) : 0) + Norm(cout) + Conv(cout, cout, 3) + (cin != cout ? Conv(cin, cout, 1) : 0);

    /// <summary>diffusers BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward, three LayerNorms.</summary>
    static double TransformerBlock(double d, double cross) =>
        3 * Norm(d) + (4 * d * d + d) + (2 * d * d + 2 * cross * d + d) + Linear(d, 8 * d) + Linear(4 * d, d);

    static double Transformer2D(double c, int layers, double cross) => Norm(c) + 2 * Linear(c, c) + layers * TransformerBlock(c, cross);

    /// <summary>Parameters of the UNet2DConditionModel this config builds.</summary>
    public static double Parameters(UNet2DConditionConfig c)
    {
        var boc = c.BlockOutChannels;
        int n = boc.Length;
        double temb = c.TimeEmbedDim;
        double p = Conv(c.InChannels, boc[0], c.ConvInKernel) + Linear(boc[0], temb) + Linear(temb, temb);
        int output = boc[0];
        for (int i = 0; i < n; i++)
        {
            int input = output;
            output = boc[i];
            bool attn = c.DownBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal);
            for (int j = 0; j < c.LayersPerBlock[i]; j++)
            {
                p += Resnet(j == 0 ? input : output, output, temb);
                if (attn) p += Transformer2D(output, c.TransformerLayersPerBlock[i], c.CrossAttentionDims[i]);
            }
            if (i != n - 1) p += Conv(output, output, 3);
        }
        if (c.MidBlockType is not null)
            p += 2 * Resnet(boc[^1], boc[^1], temb) + Transformer2D(boc[^1], c.TransformerLayersPerBlock[^1], c.CrossAttentionDims[^1]);
        var rBoc = boc.Reverse().ToArray();
        var rLayers = c.LayersPerBlock.Reverse().ToArray();
        var rCross = c.CrossAttentionDims.Reverse().ToArray();
        var rTransformer = c.UpTransformerLayersPerBlock;
        output = rBoc[0];
        for (int i = 0; i < n; i++)
        {
            int prev = output;
            output = rBoc[i];
            int input = rBoc[Math.Min(i + 1, n - 1)];
            int layers = rLayers[i] + 1;
            bool attn = c.UpBlockTypes[i].StartsWith("CrossAttn", StringComparison.Ordinal);
            for (int j = 0; j < layers; j++)
            {
                p += Resnet(UpBlock2D.UpResnetIn(j, layers, input, prev, output), output, temb);
                if (attn) p += Transformer2D(output, rTransformer[i], rCross[i]);
            }
            if (i != n - 1) p += Conv(output, output, 3);
        }
        return p + Norm(boc[0]) + Conv(boc[0], c.OutChannels, c.ConvOutKernel);
    }

    /// <summary>Parameters of the AutoencoderKL this config builds (encoder, decoder, quant convs).</summary>
    public static double Parameters(AutoencoderKLConfig c)
    {
        var boc = c.BlockOutChannels;
        int n = boc.Length, layers = c.LayersPerBlock;
        double top = boc[^1];
        double mid = 2 * Resnet(top, top, null) + (c.MidBlockAddAttention ? Norm(top) + 4 * Linear(top, top) : 0);
        double p = Conv(c.InChannels, boc[0], 3) + mid + Norm(top) + Conv(top, 2 * c.LatentChannels, 3);
        int output = boc[0];
        for (int i = 0; i < n; i++)
        {
            int input = output;
            output = boc[i];
            for (int j = 0; j < layers; j++) p += Resnet(j == 0 ? input : output, output, null);
            if (i != n - 1) p += Conv(output, output, 3);
        }
        p += Conv(c.LatentChannels, top, 3) + mid + Norm(boc[0]) + Conv(boc[0], c.OutChannels, 3);
        output = boc[^1];
        for (int i = n - 1; i >= 0; i--)
        {
            int prev = output;
            output = boc[i];
            for (int j = 0; j <= layers; j++) p += Resnet(j == 0 ? prev : output, output, null);
            if (i != 0) p += Conv(output, output, 3);
        }
        if (c.UseQuantConv) p += Conv(2 * c.LatentChannels, 2 * c.LatentChannels, 1);
        if (c.UsePostQuantConv) p += Conv(c.LatentChannels, c.LatentChannels, 1);
        return p;
    }

    static double EncoderLayers(IClipEncoderConfig c)
    {
        double h = c.HiddenSize;
        return c.NumHiddenLayers * (4 * Linear(h, h) + 2 * Norm(h) + Linear(h, c.IntermediateSize) + Linear(c.IntermediateSize, h));
    }

    /// <summary>Parameters of the CLIPTextModel this config builds (embeddings, encoder, final LayerNorm).</summary>
    public static double Parameters(ClipTextConfig c) =>
        (double)(c.VocabSize + c.MaxPositionEmbeddings) * c.HiddenSize + EncoderLayers(c) + Norm(c.HiddenSize);

    /// <summary>Parameters of the CLIP vision transformer: patch and position embeddings, encoder, LayerNorms.</summary>
    public static double Parameters(ClipVisionConfig c)
    {
        double patches = Math.Pow((double)c.ImageSize / c.PatchSize, 2) + 1;
        return (double)c.NumChannels * c.HiddenSize * c.PatchSize * c.PatchSize + (patches + 1) * c.HiddenSize + EncoderLayers(c) + 2 * Norm(c.HiddenSize);
    }

    /// <summary>Refuses a model whose float32 parameters would exceed <see cref="LimitBytes"/>, naming the config and its size fields.</summary>
    public static void CheckPlausible(double parameters, string source, string what, string sizeFields)
    {
        double bytes = parameters * 4;
        long limit = LimitBytes;
        if (double.IsFinite(bytes) && bytes <= limit) return;
        throw new InvalidInputException(string.Create(CultureInfo.InvariantCulture,
            $"{source}: this {what} config asks for {parameters / 1e9:G4} billion parameters ({bytes / (1L << 30):F1} GiB in float32), " +
            $"more than the {limit / (double)(1L << 30):F1} GiB limit (the smaller of 64 GiB and this machine's memory); check its size fields: {sizeFields}"));
    }

    /// <summary>Refuses an image size that is not positive, not a multiple of <paramref name="multiple"/>, or above <see cref="MaxImageSide"/>.</summary>
    public static void CheckImageSize(int height, int width, int multiple)
    {
        if (height <= 0 || width <= 0 || height % multiple != 0 || width % multiple != 0)
            throw new InvalidInputException($"height {height} and width {width} must be positive multiples of {multiple} (the VAE scale factor, at least 8)");
        if (height > MaxImageSide || width > MaxImageSide)
            throw new InvalidInputException($"height {height} and width {width}: each side must be at most {MaxImageSide} pixels (the activations of a larger image do not fit in memory)");
    }

    internal static string List(IEnumerable<int> values) => "[" + string.Join(", ", values) + "]";
}
