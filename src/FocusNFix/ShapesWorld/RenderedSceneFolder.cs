using System.Text;
using System.Text.Json;
using FocusNFix.IO;
using FocusNFix.Masks;

namespace FocusNFix.ShapesWorld;

/// <summary>
/// Rendered scenes for inspection (<c>fnf world render</c>): per seed the image <c>SEED.png</c> and its defect masks
/// <c>SEED_hazard.png</c>, <c>SEED_glitch.png</c> (and <c>SEED_rot.png</c> in a world with rot), and one
/// <c>scenes.jsonl</c> line per scene (seed, prompt, which defects it carries).
/// </summary>
public static class RenderedSceneFolder
{
    public const string ScenesFile = "scenes.jsonl";

    /// <summary>Every file <see cref="Write"/> would write for these seeds.</summary>
    public static IEnumerable<string> Files(WorldSpec spec, string folder, long firstSeed, int count) =>
        Enumerable.Range(0, count).SelectMany(k => new[] { "" }.Concat(spec.DefectKinds.Select(d => "_" + DefectKindNames.Name(d)))
                .Select(s => Path.Combine(folder, $"{firstSeed + k}{s}.png")))
            .Append(Path.Combine(folder, ScenesFile));

    /// <summary>Scenes of seeds firstSeed .. firstSeed + count - 1 (prompts from <paramref name="split"/> when given); refuses to replace files unless <paramref name="overwrite"/>.</summary>
    public static void Write(ShapesWorldBenchmark world, string folder, long firstSeed, int count, Split? split, bool overwrite)
    {
        if (count < 0) throw new InvalidInputException($"--count {count}: expected 0 or more scenes");
        OutputPaths.RefuseExisting(Files(world.Spec, folder, firstSeed, count), overwrite);
        Directory.CreateDirectory(folder);
        var lines = new StringBuilder();
        for (int k = 0; k < count; k++)
        {
            long seed = firstSeed + k;
            var r = world.Generate(seed, split);
            using (var img = WorldImage.ToTensor(r.Rgb, r.Width, r.Height)) Images.SavePng(img, Path.Combine(folder, $"{seed}.png"));
            foreach (var kind in world.Spec.DefectKinds)
                using (var mask = WorldImage.MaskToTensor(r.Mask(kind), r.Width, r.Height))
                    HeatmapMask.SavePng(mask, Path.Combine(folder, $"{seed}_{DefectKindNames.Name(kind)}.png"));
            if (world.Spec.Rot is null) lines.AppendLine(JsonSerializer.Serialize(new { seed, prompt = r.Prompt, hazard = r.HasHazard, glitch = r.HasGlitch }));
            else lines.AppendLine(JsonSerializer.Serialize(new { seed, prompt = r.Prompt, hazard = r.HasHazard, glitch = r.HasGlitch, rot = r.HasRot }));
        }
        AtomicFile.WriteAllText(Path.Combine(folder, ScenesFile), lines.ToString());
    }
}
