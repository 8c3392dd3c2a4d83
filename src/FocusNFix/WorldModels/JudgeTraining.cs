using FocusNFix.ShapesWorld;
using FocusNFix.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FocusNFix.WorldModels;

/// <summary>
/// Accuracy of an <see cref="AlignmentJudge"/> on rendered scenes, whose truth is their scene description.
/// </summary>
/// <param name="ObjectAccuracy">Objects whose place is predicted with the right colour and shape.</param>
/// <param name="PlaceAccuracy">Places (object or empty) predicted exactly, colour and shape.</param>
/// <param name="ImageAccuracy">Images with every place and the background right.</param>
/// <param name="PromptAccuracy">Images whose every prompted object is judged correct (alignment 1).</param>
/// <param name="MeanAlignment">Mean of the verdicts' alignment against the images' own prompts.</param>
public sealed record JudgeEvaluation(int Images, int Objects, double ObjectAccuracy, double ColourAccuracy, double ShapeAccuracy,
    double PlaceAccuracy, double BackgroundAccuracy, double ImageAccuracy, double PromptAccuracy, double MeanAlignment)
{
    public override string ToString() =>
        $"images {Images}, objects {Objects}: object {ObjectAccuracy:P2} (colour {ColourAccuracy:P2}, shape {ShapeAccuracy:P2}), " +
        $"place {PlaceAccuracy:P2}, background {BackgroundAccuracy:P2}, image {ImageAccuracy:P2}, prompt {PromptAccuracy:P2}, mean alignment {MeanAlignment:F4}";
}

/// <summary>
/// Trains the <see cref="AlignmentJudge"/> on freshly rendered scenes of one prompt split (train by default, so the
/// test split's held-out colour-shape-place triples are never seen), at the world's defect rates and augmented like
/// generator samples (<see cref="WorldAugmentation"/>). Targets come from the scene: per place the object's colour and
/// shape, or none; the background. Loss: the mean of the colour, shape (per place) and background cross-entropies.
/// </summary>
public static class JudgeTraining
{
    const ulong TrainSalt = 0x7D6E_0000_0000_0001UL, EvalSalt = 0x7D6E_0000_0000_0002UL;

    public sealed record Options(int Steps = 1500, int BatchSize = 32, double LearningRate = 2e-3, long Seed = 0,
        double WeightDecay = 1e-4, bool Augment = true, Split Split = Split.Train, JudgeConfig? Config = null, int LogImagesEvery = 500)
    {
        internal void Validate()
        {
            if (Steps < 1) throw new InvalidInputException($"judge training: steps {Steps}: expected at least 1");
            if (BatchSize < 1) throw new InvalidInputException($"judge training: batch size {BatchSize}: expected at least 1");
            if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new InvalidInputException($"judge training: learning rate {LearningRate}: expected a positive number");
            if (!(WeightDecay >= 0)) throw new InvalidInputException($"judge training: weight decay {WeightDecay}: expected >= 0");
        }
    }

    public static AlignmentJudge Train(ShapesWorldBenchmark world, Options o, Action<int, int, double>? progress = null, TensorBoardLog? log = null)
    {
        o.Validate();
        using var gc = BlockingGc.Enter();
        torch.manual_seed(o.Seed);
        using var gen = new Generator((ulong)o.Seed);
        var judge = new AlignmentJudge(world.Spec, o.Config);
        judge.train();
        using var opt = new Training.AdamW(judge.parameters(), o.LearningRate, o.WeightDecay);
        var seeds = new SplitMix64(o.Seed, TrainSalt);

        for (int step = 0; step < o.Steps; step++)
        {
            using var gcPause = TorchGcPause.Begin();
            using var scope = NewDisposeScope();
            double lr = o.LearningRate * (0.05 + 0.95 * 0.5 * (1 + Math.Cos(Math.PI * step / o.Steps)));
            opt.LearningRate = lr;

            var scenes = Render(world, seeds, o.BatchSize, o.Split);
            var (images, _, _) = WorldImage.ToBatch(scenes);
            if (o.Augment) images = WorldAugmentation.Apply(images, gen);
            var (colourT, shapeT, bgT) = Targets(judge, scenes.Select(s => s.Scene));

            using var logits = judge.forward(images);
            var loss = (F.cross_entropy(logits.Colour.flatten(0, 1), colourT.flatten())
                      + F.cross_entropy(logits.Shape.flatten(0, 1), shapeT.flatten())
                      + F.cross_entropy(logits.Background, bgT)) / 3;
            opt.ZeroGrad();
            loss.backward();
            if (!opt.Step())
                throw new TrainingFailedException($"judge training diverged at step {step}: the update would make a weight non-finite (loss {loss.item<float>()})");

            double value = loss.item<float>();
            progress?.Invoke(step + 1, o.Steps, value);
            if (log != null)
            {
                log.Scalar("judge/loss", value, step + 1);
                log.Scalar("judge/lr", lr, step + 1);
                if (o.LogImagesEvery > 0 && (step + 1) % o.LogImagesEvery == 0)
                    log.Images("judge/inputs", images.narrow(0, 0, Math.Min(16, images.shape[0])), step + 1);
            }
        }
        judge.eval();
        return judge;
    }

    static RenderedScene[] Render(ShapesWorldBenchmark world, SplitMix64 seeds, int count, Split split)
    {
        var scenes = new RenderedScene[count];
        for (int i = 0; i < count; i++) scenes[i] = world.Generate((long)(seeds.NextUInt64() >> 1), split);
        return scenes;
    }

    /// <summary>Class indices per image and place (colour, shape; "none" for an empty place) and the background.</summary>
    internal static (Tensor Colour, Tensor Shape, Tensor Background) Targets(AlignmentJudge judge, IEnumerable<Scene> scenes)
    {
        var list = scenes.ToArray();
        int places = judge.World.Places.Count, noColour = judge.Colours.Count - 1, noShape = judge.Shapes.Count - 1;
        var colour = new long[list.Length * places];
        var shape = new long[list.Length * places];
        var bg = new long[list.Length];
        for (int i = 0; i < list.Length; i++)
        {
            for (int p = 0; p < places; p++) { colour[i * places + p] = noColour; shape[i * places + p] = noShape; }
            foreach (var o in list[i].Objects)
            {
                int p = judge.World.PlaceIndex(o.Place);
                colour[i * places + p] = IndexOf(judge.Colours, o.Colour);
                shape[i * places + p] = IndexOf(judge.Shapes, o.Shape);
            }
            bg[i] = IndexOf(judge.Backgrounds, list[i].Background);
        }
        return (tensor(colour, new long[] { list.Length, places }), tensor(shape, new long[] { list.Length, places }), tensor(bg));
    }

    static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++) if (names[i] == name) return i;
        throw new InvalidInputException($"'{name}' is not in the judge's vocabulary ({string.Join(", ", names)}); was it trained for another world?");
    }

    /// <summary>
    /// Accuracy on <paramref name="count"/> rendered scenes of a split (test by default), drawn from an evaluation seed
    /// stream disjoint from training's; optionally augmented like training data.
    /// </summary>
    public static JudgeEvaluation Evaluate(AlignmentJudge judge, ShapesWorldBenchmark world, Split split = Split.Test, int count = 1000,
        bool augment = false, long seed = 0, int batchSize = 256)
    {
        if (count < 1) throw new InvalidInputException($"judge evaluation: count {count}: expected at least 1");
        using var gc = BlockingGc.Enter();
        var seeds = new SplitMix64(seed, EvalSalt);
        using var gen = new Generator((ulong)seed + 1);
        int objects = 0, objectOk = 0, colourOk = 0, shapeOk = 0, placeOk = 0, bgOk = 0, imageOk = 0, promptOk = 0, places = 0;
        double alignment = 0;
        bool wasTraining = judge.training;
        judge.eval();
        for (int start = 0; start < count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var scenes = Render(world, seeds, Math.Min(batchSize, count - start), split);
            var (images, _, _) = WorldImage.ToBatch(scenes);
            if (augment) images = WorldAugmentation.Apply(images, gen);
            var verdicts = judge.Judge(images, scenes.Select(s => s.Scene.Description).ToArray());
            for (int i = 0; i < scenes.Length; i++)
            {
                var v = verdicts[i];
                var scene = scenes[i].Scene;
                foreach (var o in v.Objects)
                {
                    objects++;
                    if (o.ColourCorrect) colourOk++;
                    if (o.ShapeCorrect) shapeOk++;
                    if (o.Correct) objectOk++;
                }
                bool allPlaces = true;
                foreach (var p in v.Places)
                {
                    places++;
                    var truth = scene.Objects.FirstOrDefault(o => o.Place == p.Place);
                    bool ok = truth is null ? p.Colour == JudgeConfig.None && p.Shape == JudgeConfig.None : p.Colour == truth.Colour && p.Shape == truth.Shape;
                    if (ok) placeOk++; else allPlaces = false;
                }
                if (v.BackgroundCorrect) bgOk++;
                if (allPlaces && v.BackgroundCorrect) imageOk++;
                if (v.AllObjectsCorrect) promptOk++;
                alignment += v.Alignment;
            }
        }
        if (wasTraining) judge.train();
        return new JudgeEvaluation(count, objects, (double)objectOk / objects, (double)colourOk / objects, (double)shapeOk / objects,
            (double)placeOk / places, (double)bgOk / count, (double)imageOk / count, (double)promptOk / count, alignment / count);
    }
}
