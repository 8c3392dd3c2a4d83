using System.Text.RegularExpressions;

namespace FocusNFix.ShapesWorld;

/// <summary>
/// The one prompt grammar of ShapesWorld:
/// <c>a {colour} {shape} in the {place}</c> for each object, joined by <c> and </c>, then
/// <c> on a {colour} background</c>. Example: "a red circle in the top left and a blue triangle in the center
/// on a gray background".
/// </summary>
public static class PromptGrammar
{
    public const string ObjectTemplate = "a {colour} {shape} in the {place}";
    public const string Joiner = " and ";
    public const string BackgroundTemplate = " on a {colour} background";

    public static string Format(SceneDescription d)
    {
        if (d.Objects.Count == 0) throw new InvalidInputException("a prompt needs at least one object");
        return string.Join(Joiner, d.Objects.Select(o => o.ToString())) + $" on a {d.Background} background";
    }

    /// <summary>
    /// Parses a prompt of the grammar against the world's vocabulary. Case, surrounding and repeated white space and
    /// one final period are forgiven; anything else that is off throws <see cref="InvalidInputException"/> naming the
    /// prompt and the part that could not be read. Checks the object count and that no place is used twice.
    /// </summary>
    public static SceneDescription Parse(string prompt, WorldSpec spec)
    {
        string text = Regex.Replace((prompt ?? "").Trim().ToLowerInvariant(), @"\s+", " ");
        if (text.EndsWith('.')) text = text[..^1].TrimEnd();
        InvalidInputException Error(string what) => new(
            $"prompt '{prompt}': {what}; expected \"{ObjectTemplate}\" joined by \"{Joiner.Trim()}\", then \"{BackgroundTemplate.Trim()}\"");

        const string bgSuffix = " background";
        int on = text.LastIndexOf(" on a ", StringComparison.Ordinal);
        if (on < 0 || !text.EndsWith(bgSuffix, StringComparison.Ordinal) || on + " on a ".Length > text.Length - bgSuffix.Length)
            throw Error("missing \"on a {colour} background\" at the end");
        string bgName = text[(on + " on a ".Length)..^bgSuffix.Length];
        if (spec.BackgroundPalette.All(c => c.Name != bgName))
            throw Error($"unknown background colour '{bgName}' (known: {string.Join(", ", spec.BackgroundPalette.Select(c => c.Name))})");

        var objects = new List<PromptObject>();
        foreach (var part in text[..on].Split(Joiner))
        {
            var words = part.Split(' ');
            if (words.Length < 6 || words[0] != "a" || words[3] != "in" || words[4] != "the")
                throw Error($"cannot read the object \"{part}\"");
            string colour = words[1], shape = words[2], place = string.Join(' ', words[5..]);
            if (spec.ShapePalette.All(c => c.Name != colour))
                throw Error($"unknown shape colour '{colour}' in \"{part}\" (known: {string.Join(", ", spec.ShapePalette.Select(c => c.Name))})");
            if (!spec.Shapes.Contains(shape))
                throw Error($"unknown shape '{shape}' in \"{part}\" (known: {string.Join(", ", spec.Shapes)})");
            if (spec.Places.All(p => p.Name != place))
                throw Error($"unknown place '{place}' in \"{part}\" (known: {string.Join(", ", spec.Places.Select(p => p.Name))})");
            objects.Add(new PromptObject(colour, shape, place));
        }
        if (objects.Count < spec.MinObjects || objects.Count > spec.MaxObjects)
            throw Error($"{objects.Count} objects, the world has {spec.MinObjects} to {spec.MaxObjects}");
        var twice = objects.GroupBy(o => o.Place).FirstOrDefault(g => g.Count() > 1);
        if (twice != null) throw Error($"place '{twice.Key}' is used twice (at most one object per place)");
        return new SceneDescription(bgName, objects);
    }

    /// <summary>Like <see cref="Parse"/>, but returns false instead of throwing.</summary>
    public static bool TryParse(string prompt, WorldSpec spec, out SceneDescription? description)
    {
        try { description = Parse(prompt, spec); return true; }
        catch (InvalidInputException) { description = null; return false; }
    }
}
