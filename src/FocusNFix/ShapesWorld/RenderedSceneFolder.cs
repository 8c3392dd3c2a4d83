using System.Text;
using System.Text.Json;
using FocusNFix.IO;
using FocusNFix.Masks;

namespace FocusNFix.ShapesWorld;

/// <summary>
/// Rendered scenes for inspection (<c>fnf world render</c>): per seed the image <c>SEED.png</c> and its defect masks
/// <c>SEED_hazard.png</c> and <c>SEED_glitch.png</c>, and one <c>scenes.jsonl</c> line per scene (seed, prompt, which
/// defects it carries).
/// </summary>
public static class RenderedSceneFolder
{
    public const string ScenesFile = "scenes.jsonl";

    /// <summary>Every file <see cref="Write"/> would write for these seeds.</summary>
    public static IEnumerable<string> Files(string folder, long firstSeed, int count) =>
        Enumerable.Range(0, count).SelectMany(k => new[] { "", "_hazard", "_glitch" }.Select(s => Path.Combine(folder, $"{firstSeed + k}{s}.png")))
            .Append(Path.Combine(folder, ScenesFile));

    /// <summary>Scenes of seeds firstSeed .. firstSeed + count - 1 (prompts from <paramref name="split"/> when given); refuses to replace files unless <paramref name="overwrite"/>.</summary>
    public static void Write(ShapesWorldBenchmark world, string folder, long firstSeed, int count, Split? split, bool overwrite)
    {
        if (count < 0) throw new InvalidInputException($"--count {count}: expected 0 or more scenes");
        OutputPaths.RefuseExisting(Files(folder, firstSeed, count), overwrite);
        Directory.CreateDirectory(folder);
        var lines = new StringBuilder();
        for (int k = 0; k < count; k++)
        {
            long seed = firstSeed + k;
            var r = world.Generate(seed, split);
            using (var img = WorldImage.ToTensor(r.Rgb, r.Width, r.Height)) Images.SavePng(img, Path.Combine(folder, $"{seed}.png"));
            using (var hazard = WorldImage.MaskToTensor(r.HazardMask, r.Width, r.Height)) HeatmapMask.SavePng(hazard, Path.Combine(folder, $"{seed}_hazard.png"));
            using (var glitch = WorldImage.MaskToTensor(r.GlitchMask, r.Width, r.Height)) HeatmapMask.SavePng(glitch, Path.Combine(folder, $"{seed}_glitch.png"));
            lines.AppendLine(JsonSerializer.Serialize(new { seed, prompt = r.Prompt, hazard = r.HasHazard, glitch = r.HasGlitch }));
        }
        AtomicFile.WriteAllText(Path.Combine(folder, ScenesFile), lines.ToString());
    }
}
