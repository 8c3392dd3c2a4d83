namespace FocusNFix.ShapesWorld;

/// <summary>The defect kinds of ShapesWorld, each drawn only in its own reserved colours.</summary>
public enum DefectKind { Hazard, Glitch, Rot }

/// <summary>Names of the defect kinds as world.json, the CLI and model folders spell them.</summary>
public static class DefectKindNames
{
    public static string Name(DefectKind kind) => kind switch
    {
        DefectKind.Hazard => "hazard",
        DefectKind.Glitch => "glitch",
        _ => "rot",
    };

    /// <summary>Parses hazard, glitch or rot (case and surrounding space forgiven); an error naming <paramref name="source"/> otherwise.</summary>
    public static DefectKind Parse(string name, string source) => name.Trim().ToLowerInvariant() switch
    {
        "hazard" => DefectKind.Hazard,
        "glitch" => DefectKind.Glitch,
        "rot" => DefectKind.Rot,
        _ => throw new InvalidInputException($"{source}: defect '{name}': expected hazard, glitch or rot"),
    };
}
