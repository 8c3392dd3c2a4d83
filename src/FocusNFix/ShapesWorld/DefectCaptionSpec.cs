namespace FocusNFix.ShapesWorld;

/// <summary>
/// Captions that name defects, so a text-to-image model trained on them has a concept to steer away from (negative
/// prompts, SLD): "{prompt} with {phrases}", the named kinds' phrases joined by " and ", e.g. "a red circle in the
/// center on a gray background with a hazard mark and rot". Of the training scenes that carry a kind, about
/// <see cref="ShareOfDefectiveScenes"/> get a caption naming it (see <see cref="CaptionedSceneSampler"/>); plain
/// prompts still show every defect at the world's rates.
/// </summary>
/// <param name="ShareOfDefectiveScenes">0 turns captions off (the training data is then exactly the world's scenes with plain prompts).</param>
/// <param name="Phrases">Per kind, the phrase a caption names it with (also the concept text for SLD and negative prompts).</param>
public sealed record DefectCaptionSpec(double ShareOfDefectiveScenes, IReadOnlyDictionary<DefectKind, string> Phrases)
{
    public const string Form = "{prompt} with {phrases}";
    public const string PhraseJoiner = " and ";

    static readonly IReadOnlyDictionary<DefectKind, string> DefaultPhrases = new Dictionary<DefectKind, string>
    {
        [DefectKind.Hazard] = "a hazard mark",
        [DefectKind.Glitch] = "a glitch",
        [DefectKind.Rot] = "rot",
    };

    /// <summary>Half of the defective scenes named, with the default phrases.</summary>
    public static DefectCaptionSpec Default => new(0.5, DefaultPhrases);

    /// <summary>No captions name defects (a version 1 world); the phrases are still defined for negative prompts.</summary>
    public static DefectCaptionSpec None => new(0, DefaultPhrases);

    public string Phrase(DefectKind kind) => Phrases.TryGetValue(kind, out var p) ? p
        : throw new InvalidInputException($"world spec: no caption phrase for the {DefectKindNames.Name(kind)} defect");

    /// <summary>The caption of a prompt whose scene carries (and names) <paramref name="kinds"/>; the plain prompt when none.</summary>
    public string Caption(string prompt, IEnumerable<DefectKind> kinds)
    {
        var phrases = kinds.Distinct().OrderBy(k => k).Select(Phrase).ToList();
        return phrases.Count == 0 ? prompt : $"{prompt} with {string.Join(PhraseJoiner, phrases)}";
    }

    /// <summary>
    /// The probability that a training scene of a description whose chance of carrying the kind is <paramref name="p"/>
    /// gets a caption naming it, so that named scenes are <see cref="ShareOfDefectiveScenes"/> (s) of all scenes with the
    /// kind: q / (q + (1 - q) p) = s, i.e. q = s p / (1 - s + s p).
    /// </summary>
    public double NamingProbability(double p)
    {
        double s = ShareOfDefectiveScenes;
        if (s <= 0 || p <= 0) return 0;
        return s * p / (1 - s + s * p);
    }
}
