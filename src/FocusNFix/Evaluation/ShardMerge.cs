using FocusNFix.IO;

namespace FocusNFix.Evaluation;

/// <summary>
/// <c>fnf eval merge DIR...</c>: the shards of one evaluation (<c>fnf eval --shard i/n</c>, one folder each) made into the
/// report an unsharded run writes: the per-image records in the unsharded order, summaries computed from them (so
/// the same figures to the last bit), the picture rows the unsharded run would pick, and every picture copied.
/// </summary>
public static class ShardMerge
{
    public static EvaluationResult Merge(IReadOnlyList<string> shardDirs, string outDir)
    {
        if (shardDirs.Count == 0) throw new InvalidInputException("eval merge: expected the output folders of every shard (fnf eval --shard i/n --out DIR)");
        OutputFolder.Check(outDir, "--out");
        var shards = shardDirs.Select(d => (Dir: d, Info: ShardInfo.Load(d), Report: EvaluationResult.Load(Path.Combine(d, ReportWriter.JsonFile)))).ToList();
        var first = shards[0];
        int count = first.Info.Count;
        foreach (var (dir, info, report) in shards)
        {
            string where = Path.Combine(dir, ShardInfo.FileName);
            if (info.Count != count || info.BatchSize != first.Info.BatchSize || info.TotalJobs != first.Info.TotalJobs || info.PictureRows != first.Info.PictureRows)
                throw new InvalidInputException($"{where}: shard {info.Index}/{info.Count} (batch {info.BatchSize}, {info.TotalJobs} images) is not of the same evaluation as {Path.Combine(first.Dir, ShardInfo.FileName)} (shard {first.Info.Index}/{count}, batch {first.Info.BatchSize}, {first.Info.TotalJobs} images)");
            if (!report.Methods.SequenceEqual(first.Report.Methods) || !report.Prompts.SequenceEqual(first.Report.Prompts) || !report.Seeds.SequenceEqual(first.Report.Seeds)
                || report.BaseModel != first.Report.BaseModel || report.TargetMetric != first.Report.TargetMetric)
                throw new InvalidInputException($"{Path.Combine(dir, ReportWriter.JsonFile)}: its model, methods, prompts or seeds differ from {Path.Combine(first.Dir, ReportWriter.JsonFile)}'s: expected shards of one evaluation");
            var expected = new EvalShard(info.Index, info.Count).Positions(info.TotalJobs, info.BatchSize);
            if (!info.Positions.SequenceEqual(expected))
                throw new InvalidInputException($"{where}: its images are not those shard {info.Index}/{info.Count} evaluates");
        }
        var indices = shards.Select(s => s.Info.Index).ToList();
        var missing = Enumerable.Range(0, count).Except(indices).ToList();
        var twice = indices.GroupBy(i => i).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (missing.Count > 0 || twice.Count > 0)
            throw new InvalidInputException($"eval merge: expected each of the {count} shards exactly once; {(missing.Count > 0 ? $"missing {string.Join(", ", missing.Select(i => $"{i}/{count}"))}" : "")}{(missing.Count > 0 && twice.Count > 0 ? "; " : "")}{(twice.Count > 0 ? $"given twice {string.Join(", ", twice.Select(i => $"{i}/{count}"))}" : "")}");

        var seeds = first.Report.Seeds;
        int Position(ImageRecord i) => i.PromptIndex * seeds.Count + seeds.IndexOf(i.Seed);
        var methods = first.Report.Methods;
        var merged = new EvaluationResult
        {
            Title = first.Report.Title, BaseModel = first.Report.BaseModel, BaseMethod = first.Report.BaseMethod, TargetMetric = first.Report.TargetMetric,
            Methods = methods.ToList(), Prompts = first.Report.Prompts.ToList(), Seeds = seeds.ToList(), Curves = first.Report.Curves,
        };
        var images = shards.SelectMany(s => s.Report.Images.Select(i => (s.Dir, Image: i))).ToList();
        foreach (var (dir, image) in images.OrderBy(x => methods.IndexOf(x.Image.Method)).ThenBy(x => Position(x.Image)))
        {
            Copy(dir, image.ImagePath, outDir);
            merged.Images.Add(image);
        }
        if (merged.Images.Count != first.Info.TotalJobs * methods.Count)
            throw new InvalidInputException($"eval merge: the shards hold {merged.Images.Count} image records, expected {first.Info.TotalJobs} images x {methods.Count} methods");
        // The unsharded choice (PictureRowChoice's order); every shard offered its best rows.
        var offers = shards.SelectMany(s => s.Info.Rows.Select(r => (s.Dir, Offer: r))).ToList();
        var rows = PictureRowChoice.Order(offers.Select(o => o.Offer.Spread).ToList(), offers.Select(o => o.Offer.MaskNonEmpty).ToList(),
            offers.Select(o => o.Offer.Position).ToList(), first.Info.PictureRows).Select(k => offers[k]);
        merged.PictureRowRule = first.Report.PictureRowRule;
        foreach (var (dir, offer) in rows)
        {
            var row = offer.Row;
            foreach (var rel in new[] { row.BaseImage, row.HeatmapOverlay, row.Mask }.Concat(row.MethodImages.Values).Concat(row.DiffMaps.Values))
                if (rel != null) Copy(dir, rel, outDir);
            merged.Rows.Add(row);
        }
        merged.ComputeSummaries();
        merged.Notes["merged_from"] = string.Join(" ", shards.OrderBy(s => s.Info.Index).Select(s => s.Dir));
        foreach (var (k, v) in first.Report.Notes.Where(n => n.Key != "command")) merged.Notes[k] = v;
        return merged;
    }

    static void Copy(string shardDir, string relative, string outDir)
    {
        if (Path.IsPathRooted(relative) || relative.Split('/', '\\').Contains(".."))
            throw new InvalidInputException($"{Path.Combine(shardDir, ReportWriter.JsonFile)}: picture path '{relative}' leaves the shard's folder");
        var from = Path.Combine(shardDir, relative);
        if (!File.Exists(from)) throw new InvalidInputException($"{from}: no such file: the shard's report names it");
        var to = Path.Combine(outDir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(to)!);
        AtomicFile.WriteAllBytes(to, File.ReadAllBytes(from));
    }
}
