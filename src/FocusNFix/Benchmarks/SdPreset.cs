using System.Text.Json.Nodes;
using FocusNFix.Pipelines;

namespace FocusNFix.Benchmarks;

/// <summary>
/// The architecture of a Stable Diffusion pipeline as its diffusers folder states it: the config of each component
/// (UNet, VAE, CLIP text encoder, DDIM scheduler) and the seed its random weights are drawn with. <see cref="Sd15"/>
/// and <see cref="Sd21"/> carry the published configs of runwayml/stable-diffusion-v1-5 and
/// stabilityai/stable-diffusion-2-1, so a folder built from them has every tensor, kernel and byte of the real model;
/// only the weight values are random.
/// </summary>
public sealed record SdPreset(string Name, JsonObject Unet, JsonObject Vae, JsonObject TextEncoder, JsonObject Scheduler, ulong Seed = 0)
{
    /// <summary>The preset names <c>fnf bench --preset</c> accepts.</summary>
    public static readonly string[] Names = { "sd15", "sd21" };

    public static SdPreset ByName(string name) => name switch
    {
        "sd15" => Sd15(),
        "sd21" => Sd21(),
        _ => throw new InvalidInputException($"--preset {name}: expected one of {string.Join(", ", Names)}"),
    };

    /// <summary>Stable Diffusion v1.5: 860M-parameter UNet (64×64 latents at 512 px), CLIP ViT-L/14 text encoder, epsilon prediction.</summary>
    public static SdPreset Sd15() => new("sd15",
        Unet: UNetConfig(sampleSize: 64, crossAttentionDim: 768, attentionHeadDim: new JsonArray(8), linearProjection: false, upcastAttention: false),
        Vae: VaeConfig(sampleSize: 512),
        TextEncoder: TextConfig(hidden: 768, intermediate: 3072, layers: 12, heads: 12, act: "quick_gelu", projection: 768),
        Scheduler: Ddim("epsilon"));

    /// <summary>
    /// Stable Diffusion v2.1 (768-v): 866M-parameter UNet with linear projections and per-block head widths, OpenCLIP
    /// ViT-H text tower as diffusers converts it (1024 wide, 23 layers, exact GELU), v prediction.
    /// </summary>
    public static SdPreset Sd21() => new("sd21",
        Unet: UNetConfig(sampleSize: 96, crossAttentionDim: 1024, attentionHeadDim: new JsonArray(5, 10, 20, 20), linearProjection: true, upcastAttention: true),
        Vae: VaeConfig(sampleSize: 768),
        TextEncoder: TextConfig(hidden: 1024, intermediate: 4096, layers: 23, heads: 16, act: "gelu", projection: 512),
        Scheduler: Ddim("v_prediction"));

    static JsonArray Strings(params string[] s) => new(s.Select(x => (JsonNode)JsonValue.Create(x)!).ToArray());

    static JsonObject UNetConfig(int sampleSize, int crossAttentionDim, JsonArray attentionHeadDim, bool linearProjection, bool upcastAttention)
    {
        var o = new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel",
            ["_diffusers_version"] = "0.27.2",
            ["act_fn"] = "silu",
            ["attention_head_dim"] = attentionHeadDim.Count == 1 ? attentionHeadDim[0]!.GetValue<int>() : attentionHeadDim,
            ["block_out_channels"] = new JsonArray(320, 640, 1280, 1280),
            ["center_input_sample"] = false,
            ["cross_attention_dim"] = crossAttentionDim,
            ["down_block_types"] = Strings("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            ["downsample_padding"] = 1,
            ["flip_sin_to_cos"] = true,
            ["freq_shift"] = 0,
            ["in_channels"] = 4,
            ["layers_per_block"] = 2,
            ["mid_block_scale_factor"] = 1,
            ["norm_eps"] = 1e-5,
            ["norm_num_groups"] = 32,
            ["out_channels"] = 4,
            ["sample_size"] = sampleSize,
            ["up_block_types"] = Strings("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        };
        if (linearProjection) o["use_linear_projection"] = true;
        if (upcastAttention) o["upcast_attention"] = true;
        return o;
    }

    static JsonObject VaeConfig(int sampleSize) => new()
    {
        ["_class_name"] = "AutoencoderKL",
        ["_diffusers_version"] = "0.27.2",
        ["act_fn"] = "silu",
        ["block_out_channels"] = new JsonArray(128, 256, 512, 512),
        ["down_block_types"] = Strings("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"),
        ["in_channels"] = 3,
        ["latent_channels"] = 4,
        ["layers_per_block"] = 2,
        ["norm_num_groups"] = 32,
        ["out_channels"] = 3,
        ["sample_size"] = sampleSize,
        ["scaling_factor"] = 0.18215,
        ["up_block_types"] = Strings("UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
    };

    static JsonObject TextConfig(int hidden, int intermediate, int layers, int heads, string act, int projection) => new()
    {
        ["architectures"] = Strings("CLIPTextModel"),
        ["model_type"] = "clip_text_model",
        ["attention_dropout"] = 0.0,
        ["bos_token_id"] = 0,
        ["eos_token_id"] = 2,
        ["hidden_act"] = act,
        ["hidden_size"] = hidden,
        ["initializer_factor"] = 1.0,
        ["initializer_range"] = 0.02,
        ["intermediate_size"] = intermediate,
        ["layer_norm_eps"] = 1e-5,
        ["max_position_embeddings"] = 77,
        ["num_attention_heads"] = heads,
        ["num_hidden_layers"] = layers,
        ["pad_token_id"] = 1,
        ["projection_dim"] = projection,
        ["torch_dtype"] = "float32",
        ["vocab_size"] = 49408,
    };

    /// <summary>The SD scheduler config (scaled-linear betas 0.00085..0.012, leading spacing, offset 1) as a DDIMScheduler.</summary>
    static JsonObject Ddim(string predictionType) => new()
    {
        ["_class_name"] = "DDIMScheduler",
        ["_diffusers_version"] = "0.27.2",
        ["beta_end"] = 0.012,
        ["beta_schedule"] = "scaled_linear",
        ["beta_start"] = 0.00085,
        ["clip_sample"] = false,
        ["num_train_timesteps"] = 1000,
        ["prediction_type"] = predictionType,
        ["set_alpha_to_one"] = false,
        ["steps_offset"] = 1,
        ["timestep_spacing"] = "leading",
        ["trained_betas"] = null,
    };

    /// <summary>model_index.json of a StableDiffusionPipeline without safety checker.</summary>
    public static JsonObject ModelIndex() => new()
    {
        ["_class_name"] = PipelineFolder.StableDiffusionClass,
        ["_diffusers_version"] = "0.27.2",
        ["feature_extractor"] = new JsonArray(null, null),
        ["image_encoder"] = new JsonArray(null, null),
        ["requires_safety_checker"] = false,
        ["safety_checker"] = new JsonArray(null, null),
        ["scheduler"] = Strings("diffusers", "DDIMScheduler"),
        ["text_encoder"] = Strings("transformers", "CLIPTextModel"),
        ["tokenizer"] = Strings("transformers", "CLIPTokenizer"),
        ["unet"] = Strings("diffusers", "UNet2DConditionModel"),
        ["vae"] = Strings("diffusers", "AutoencoderKL"),
    };

    /// <summary>Everything the folder's bytes depend on, for telling a cached folder from a stale one.</summary>
    public string Fingerprint()
    {
        var o = new JsonObject
        {
            ["name"] = Name, ["seed"] = Seed, ["unet"] = Unet.DeepClone(), ["vae"] = Vae.DeepClone(),
            ["text_encoder"] = TextEncoder.DeepClone(), ["scheduler"] = Scheduler.DeepClone(), ["model_index"] = ModelIndex(),
            ["format"] = 1,
        };
        var bytes = System.Text.Encoding.UTF8.GetBytes(o.ToJsonString());
        return Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes)).ToLowerInvariant();
    }
}
