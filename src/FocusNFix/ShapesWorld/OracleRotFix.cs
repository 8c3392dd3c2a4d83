namespace FocusNFix.ShapesWorld;

/// <summary>What became of rot on an image made from one that carried it (a fine-tuned model's image of the same seed).</summary>
public enum RotOutcome
{
    /// <summary>Rot is still present on the image.</summary>
    Rotten,
    /// <summary>The rot region shows the object's own colour and the object is correct (colour in place, shape decided and right).</summary>
    Fixed,
    /// <summary>The rot region shows the background: the object was eaten away or removed.</summary>
    Erased,
    /// <summary>The rot region shows something other than the object's colour or the background.</summary>
    Recoloured,
    /// <summary>The region is repainted in the object's colour but the object is not correct (its shape wrong or undecided).</summary>
    Misshapen,
}

/// <summary>
/// The verdict on a rot region: <see cref="OwnColourShare"/>, <see cref="BackgroundShare"/> and <see cref="ResidueShare"/>
/// are shares of the region's pixels showing the object's colour, the background colour, or within the residue
/// distance of the rot colours.
/// </summary>
public sealed record RotFixVerdict(RotOutcome Outcome, int ObjectIndex, double OwnColourShare, double BackgroundShare, double ResidueShare)
{
    /// <summary>Share of the region that must show the object's colour for a fix.</summary>
    public const double FixedShare = 0.8;
    /// <summary>Share of the region showing the background from which the object counts as erased.</summary>
    public const double ErasedShare = 0.5;

    public const string Rule = "against a reference rot mask (the original image's) on the object whose colour shows on most pixels around it: " +
        "rotten if rot is present on the image; else erased if >= 0.5 of the mask shows the background colour; else recoloured if < 0.8 " +
        "shows the object's colour; else misshapen unless the object is correct; else fixed. Only fixed is a success";

    public bool IsFixed => Outcome == RotOutcome.Fixed;
}

public sealed partial class Oracle
{
    /// <summary>
    /// The prompted object rot eats on <paramref name="reference"/>: the one whose colour shows on most pixels of the ring
    /// around <paramref name="rotMask"/> inside its place box (rot lies inside its object, so that ring is mostly the
    /// object). Null when no prompted object's colour touches the mask.
    /// </summary>
    public int? RotObject(byte[] reference, string prompt, bool[] rotMask)
    {
        int size = _spec.ImageSize;
        WorldImage.CheckLength(reference.Length, size, size, $"image for the {size}x{size} world");
        if (rotMask.Length != size * size) throw new InvalidInputException($"rot mask of {rotMask.Length} pixels: expected {size * size}");
        var d = PromptGrammar.Parse(prompt, _spec);
        int? best = null;
        int bestCount = 0;
        for (int i = 0; i < d.Objects.Count; i++)
        {
            var place = _spec.Place(d.Objects[i].Place);
            var shows = Shows(reference, _spec.ShapeColour(d.Objects[i].Colour).Rgb);
            int count = 0;
            for (int p = 0; p < rotMask.Length; p++)
            {
                int x = p % size, y = p / size;
                if (rotMask[p] || !shows[p] || !place.Contains(x, y)) continue;
                bool touches = (x > 0 && rotMask[p - 1]) || (x < size - 1 && rotMask[p + 1]) || (y > 0 && rotMask[p - size]) || (y < size - 1 && rotMask[p + size]);
                if (touches) count++;
            }
            if (count > bestCount) { best = i; bestCount = count; }
        }
        return best;
    }

    /// <summary>
    /// Judges what became of rot: <paramref name="rotMask"/> is the rot mask of the original image (the oracle's, or a
    /// render's), <paramref name="objectIndex"/> the prompted object it ate (<see cref="RotObject"/>). Rules:
    /// <see cref="RotFixVerdict.Rule"/>; erasing or recolouring the object is a failure, not a fix.
    /// </summary>
    public RotFixVerdict JudgeRotFix(byte[] image, string prompt, bool[] rotMask, int objectIndex)
    {
        if (_spec.Rot is null) throw new InvalidInputException("this world defines no rot defect");
        var report = Judge(image, prompt);
        if (objectIndex < 0 || objectIndex >= report.Objects.Count)
            throw new InvalidInputException($"object index {objectIndex}: the prompt has {report.Objects.Count} objects");
        if (rotMask.Length != image.Length / 3) throw new InvalidInputException($"rot mask of {rotMask.Length} pixels: expected {image.Length / 3}");
        var obj = report.Objects[objectIndex];
        var own = Shows(image, _spec.ShapeColour(obj.Object.Colour).Rgb);
        var bg = Shows(image, _spec.BackgroundColour(report.Prompt.Background).Rgb);
        var residue = report.Rot!.ResidueMask;
        int total = 0, ownCount = 0, bgCount = 0, residueCount = 0;
        for (int p = 0; p < rotMask.Length; p++)
        {
            if (!rotMask[p]) continue;
            total++;
            if (own[p]) ownCount++;
            if (bg[p]) bgCount++;
            if (residue[p]) residueCount++;
        }
        if (total == 0) throw new InvalidInputException("an empty rot mask: there is no rot to judge a fix of");
        double ownShare = (double)ownCount / total, bgShare = (double)bgCount / total, residueShare = (double)residueCount / total;
        var outcome = report.Rot.Present ? RotOutcome.Rotten
            : bgShare >= RotFixVerdict.ErasedShare ? RotOutcome.Erased
            : ownShare < RotFixVerdict.FixedShare ? RotOutcome.Recoloured
            : !obj.Correct ? RotOutcome.Misshapen
            : RotOutcome.Fixed;
        return new RotFixVerdict(outcome, objectIndex, ownShare, bgShare, residueShare);
    }

    /// <summary>
    /// <see cref="JudgeRotFix(byte[], string, bool[], int)"/> against a reference image of the same prompt: its rot mask
    /// and rot object are measured on it. Null when the reference carries no rot (or it touches no prompted object).
    /// </summary>
    public RotFixVerdict? JudgeRotFix(byte[] image, byte[] reference, string prompt)
    {
        if (_spec.Rot is null) throw new InvalidInputException("this world defines no rot defect");
        var rot = Defect(reference, DefectKind.Rot);
        if (!rot.Present) return null;
        return RotObject(reference, prompt, rot.Mask) is { } k ? JudgeRotFix(image, prompt, rot.Mask, k) : null;
    }
}
