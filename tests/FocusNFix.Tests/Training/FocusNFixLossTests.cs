using FocusNFix.Masks;
using FocusNFix.Rewards;
using FocusNFix.Training;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Training;

public class FocusNFixLossTests
{
    /// <summary>A reward that ignores the image: the loss's gradient is then the constraint's alone.</summary>
    sealed class ConstantReward(float value) : IReward
    {
        public string Name => "constant";
        public Tensor Score(Tensor images, IReadOnlyList<string> prompts) => full(images.shape[0], value) + 0 * images.sum();
        public void To(Device device) { }
    }

    static LossBatch Batch(Tensor images, Tensor originals, Tensor masks) =>
        new(images, images, originals, originals, masks, Enumerable.Repeat("p", (int)images.shape[0]).ToList());

    [Fact]
    public void LossIsMinusRewardPlusLambdaTimesTheMaskedFrobeniusNorm()
    {
        using var scope = NewDisposeScope();
        using var g = new TorchSharp.torch.Generator(3);
        var i = rand(new long[] { 2, 3, 4, 4 }, generator: g);
        var i0 = rand(new long[] { 2, 3, 4, 4 }, generator: g);
        var m = zeros(2, 1, 4, 4);
        m[.., .., TensorIndex.Slice(0, 2)] = 1;
        var terms = FocusNFixLoss.Compute(Batch(i, i0, m), new RedReward(), new LossSettings(0.5, ConstraintNorm.Frobenius, false));

        var r = i[.., 0].mean(new long[] { 1, 2 });
        var byHand = ((i - i0) * (1 - m)).square().sum(new long[] { 1, 2, 3 }).sqrt();
        Assert.Equal((-r + 0.5 * byHand).mean().item<float>(), terms.Loss.item<float>(), 6);
        Assert.Equal(byHand.data<float>().ToArray(), terms.Constraint.data<float>().ToArray());
        Assert.Equal(r.data<float>().ToArray(), terms.Reward.data<float>().ToArray());
    }

    [Fact]
    public void TheConstraintPullsOnlyOutsideTheMask()
    {
        using var scope = NewDisposeScope();
        using var g = new TorchSharp.torch.Generator(4);
        var i = rand(new long[] { 1, 3, 4, 4 }, generator: g).requires_grad_(true);
        var i0 = rand(new long[] { 1, 3, 4, 4 }, generator: g);
        var m = zeros(1, 1, 4, 4);
        m[.., .., TensorIndex.Slice(0, 2)] = 1;
        var terms = FocusNFixLoss.Compute(Batch(i, i0, m), new ConstantReward(1f), new LossSettings(1.0, ConstraintNorm.Frobenius, false));
        terms.Loss.backward();
        var grad = i.grad!;
        Assert.Equal(0f, grad[.., .., TensorIndex.Slice(0, 2)].abs().sum().item<float>());
        Assert.True(grad[.., .., TensorIndex.Slice(2, 4)].abs().sum().item<float>() > 0);
    }

    [Fact]
    public void DraftIgnoresTheOriginalAndGlobalConstrainsEverything()
    {
        using var scope = NewDisposeScope();
        using var g = new TorchSharp.torch.Generator(5);
        var i = rand(new long[] { 2, 3, 4, 4 }, generator: g);
        var i0 = rand(new long[] { 2, 3, 4, 4 }, generator: g);
        var m = ones(2, 1, 4, 4);
        var draft = FocusNFixLoss.Compute(Batch(i, i0, m), new RedReward(), LossSettings.FromConfig(new TrainingConfig { Objective = "draft" }));
        Assert.Equal(-i[.., 0].mean().item<float>(), draft.Loss.item<float>(), 6);

        var global = FocusNFixLoss.Compute(Batch(i, i0, zeros(2, 1, 4, 4)), new ConstantReward(0f), new LossSettings(1.0, ConstraintNorm.Frobenius, false));
        var whole = (i - i0).square().sum(new long[] { 1, 2, 3 }).sqrt().mean();
        Assert.Equal(whole.item<float>(), global.Loss.item<float>(), 6);
    }

    [Fact]
    public void LatentSpaceComparesLatentsUnderTheResizedMask()
    {
        using var scope = NewDisposeScope();
        using var g = new TorchSharp.torch.Generator(6);
        var images = rand(new long[] { 1, 3, 8, 8 }, generator: g);
        var z = randn(new long[] { 1, 4, 4, 4 }, generator: g);
        var z0 = randn(new long[] { 1, 4, 4, 4 }, generator: g);
        var m = zeros(1, 1, 8, 8);
        m[.., .., TensorIndex.Slice(0, 4)] = 1;
        var batch = new LossBatch(images, z, images, z0, m, new[] { "p" });
        var terms = FocusNFixLoss.Compute(batch, new ConstantReward(0f), new LossSettings(1.0, ConstraintNorm.PerPixel, true));
        var expected = RegionConstraint.PerImage(z, z0, HeatmapMask.ResizeTo(m, 4, 4), ConstraintNorm.PerPixel);
        Assert.Equal(expected.item<float>(), terms.Constraint.item<float>());
        Assert.True(terms.Constraint.item<float>() > 0);
    }
}
