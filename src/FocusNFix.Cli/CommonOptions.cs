using System.CommandLine;
using FocusNFix;
using static TorchSharp.torch;

namespace FocusNFix.Cli;

/// <summary>Options shared by the commands that run models.</summary>
public static class CommonOptions
{
    public static Option<string> Device() => new("--device") { Description = "Torch device: cpu, cuda, cuda:N (needs TorchSharp's CUDA package)", DefaultValueFactory = _ => "cpu" };
    public static Option<string> DType() => new("--dtype") { Description = "Model dtype: float32, bfloat16 or float16 (where the backend supports it)", DefaultValueFactory = _ => "float32" };
    /// <param name="defaultThreads">1 for the small ShapesWorld nets: with more threads, libgomp's spin-waiting costs more than it gains.</param>
    public static Option<int> Threads(int defaultThreads = 0) => new("--threads") { Description = "CPU threads for torch (0 = torch's default)", DefaultValueFactory = _ => defaultThreads };

    /// <summary>Sampling steps; unset means the model's recommended sampling (resolve with PipelineFolder.ResolveSampling).</summary>
    public static Option<int?> SamplingSteps() => new("--steps") { Description = "Sampling steps (default: the model's _focusnfix_sampling in model_index.json, else 50)" };
    /// <summary>Guidance scale; unset means the model's recommended sampling (resolve with PipelineFolder.ResolveSampling).</summary>
    public static Option<double?> Guidance() => new("--guidance") { Description = "Classifier-free guidance scale, none at 1 or below (default: the model's _focusnfix_sampling in model_index.json, else 7.5)" };

    /// <summary>Refuses a count below <paramref name="min"/> while parsing, with the option's name (exit code 2, one line).</summary>
    public static T AtLeast<T>(this T option, int min) where T : Option
    {
        option.Validators.Add(r =>
        {
            var value = r.Tokens.Count > 0 && int.TryParse(r.Tokens[^1].Value, out var v) ? v : (int?)null;
            if (value < min) r.AddError($"{option.Name} = {value}: expected an integer >= {min}");
        });
        return option;
    }

    /// <summary>
    /// The sampling values given on the command line, refused before any model loads (with the flags' names); unset
    /// ones come from the model later.
    /// </summary>
    public static void CheckSampling(int? steps, double? guidance) =>
        new Pipelines.SampleOptions { Steps = steps ?? 1, GuidanceScale = guidance ?? 1 }
            .Validate(key => key switch { "num_inference_steps" => "--steps", "guidance_scale" => "--guidance", _ => key });

    public static Device ParseDevice(string text) => Placement.ParseDevice(text, "--device");

    public static ScalarType ParseDType(string text) => Placement.ParseDType(text, "--dtype");

    public static void ApplyThreads(int threads)
    {
        if (threads > 0) set_num_threads(threads);
    }
}
