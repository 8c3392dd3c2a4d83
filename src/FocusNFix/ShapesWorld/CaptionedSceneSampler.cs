namespace FocusNFix.ShapesWorld;

/// <summary>A training example of the base model: the rendered scene and its caption (the plain prompt, or one naming defects).</summary>
public sealed record CaptionedScene(RenderedScene Scene, string Caption, IReadOnlyList<DefectKind> NamedDefects);

/// <summary>
/// Draws the base model's training examples with captions that name defects (<see cref="DefectCaptionSpec"/>). For a
/// seed: the world's scene of that seed (within a split); then, per defect kind, an independent draw from the caption
/// stream names the kind with probability q = s p / (1 - s + s p), p being the kind's chance on that description (hazard
/// 1 - prod(1 - rate of each object's shape), glitch and rot their rates); when some kinds are named the scene is
/// redrawn for the same description (up to <see cref="MaxRedraws"/> times) until it carries every named kind.
/// So a plain prompt's scenes are exactly the world's (the naming draw is independent of the scene), a named caption's
/// scenes always show what it names, and about s of the scenes that carry a kind are captioned with it (p ignores the
/// rare stamps that find no room). A named scene that cannot be drawn keeps the plain prompt and the first scene.
/// With share 0 every example is the world's scene of the seed with its plain prompt.
/// </summary>
public sealed class CaptionedSceneSampler
{
    const ulong NamingSalt = 0xCA97_10E5_0000_0001UL, RedrawSalt = 0xCA97_10E5_0000_0002UL;
    public const int MaxRedraws = 1000;
    readonly ShapesWorldBenchmark _world;

    public CaptionedSceneSampler(ShapesWorldBenchmark world) { _world = world; }

    public CaptionedScene Draw(long seed, Split? split = null)
    {
        var spec = _world.Spec;
        var scene = _world.Sampler.Sample(seed, split);
        var d = scene.Description;
        var naming = new SplitMix64(seed, NamingSalt);
        var named = spec.DefectKinds.Where(k => naming.NextBool(spec.Captions.NamingProbability(Chance(spec, d, k)))).ToArray();
        if (named.Length > 0)
        {
            var redraws = new SplitMix64(seed, RedrawSalt);
            for (int i = 0; i < MaxRedraws; i++)
            {
                var candidate = _world.Sampler.Realize(d, (long)(redraws.NextUInt64() >> 1));
                if (named.All(candidate.Defects.Contains))
                    return new CaptionedScene(_world.Renderer.Render(candidate), spec.Captions.Caption(candidate.Prompt, named), named);
            }
        }
        return new CaptionedScene(_world.Renderer.Render(scene), scene.Prompt, []);
    }

    /// <summary>The chance that a scene of <paramref name="d"/> carries <paramref name="kind"/>, from the world's rates.</summary>
    public static double Chance(WorldSpec spec, SceneDescription d, DefectKind kind) => kind switch
    {
        DefectKind.Hazard => 1 - d.Objects.Aggregate(1.0, (clean, o) => clean * (1 - spec.HazardRate(o.Shape))),
        DefectKind.Glitch => spec.GlitchRate,
        _ => spec.Rot?.Rate ?? 0,
    };
}
