using FocusNFix.Pipelines;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace FocusNFix.Tests.Pipelines;

public class GradientCheckpointTests
{
    const double Tol = 1e-6;

    // A small "denoising step": conv -> SiLU -> linear over the width -> residual update, using a closed-over tensor
    // that does not require grad (like a timestep embedding or precomputed noise).
    sealed class Step
    {
        public readonly Conv2d Conv;
        public readonly Linear Lin;
        public readonly Tensor Bias;
        public int Calls;

        public Step(int seed)
        {
            // A private generator: tests in other classes run in parallel and draw from the global one.
            var g = new torch.Generator((ulong)seed);
            Conv = nn.Conv2d(2, 2, 3, padding: 1);
            Lin = nn.Linear(6, 6);
            using (no_grad())
                foreach (var p in Parameters) p.copy_(randn(p.shape, generator: g) * 0.3);
            Bias = randn(new long[] { 1, 2, 1, 6 }, generator: g) * 0.1;
        }

        public Tensor Forward(Tensor x)
        {
            Calls++;
            var h = nn.functional.silu(Conv.forward(x));
            return x - 0.3 * Lin.forward(h) + Bias;
        }

        public Parameter[] Parameters => Conv.parameters().Concat(Lin.parameters()).ToArray();
        public void ZeroGrad() { foreach (var p in Parameters) p.grad?.zero_(); }
    }

    static Tensor[] Grads(Step s) => s.Parameters.Select(p => p.grad!.clone()).ToArray();

    static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        var err = (expected - actual).abs().max().item<float>();
        Assert.True(err <= Tol, $"{what}: max abs error {err}");
    }

    static Tensor Input(bool requiresGrad)
    {
        return randn(new long[] { 2, 2, 5, 6 }, generator: new torch.Generator(7)).requires_grad_(requiresGrad);
    }

    [Fact]
    public void GradientsMatchPlainBackpropForInputAndClosedOverParameters()
    {
        var step = new Step(1);
        var x = Input(true);
        var plain = step.Forward(x);
        plain.square().sum().backward();
        var gx = x.grad!.clone();
        var gp = Grads(step);

        x.grad!.zero_();
        step.ZeroGrad();
        step.Calls = 0;
        var ck = GradientCheckpoint.Apply(step.Forward, x);
        Assert.Equal(1, step.Calls);
        AssertClose(plain, ck, "output");
        ck.square().sum().backward();
        Assert.Equal(2, step.Calls);  // recomputed once in backward
        AssertClose(gx, x.grad!, "input grad");
        var gk = Grads(step);
        for (int i = 0; i < gp.Length; i++) AssertClose(gp[i], gk[i], $"parameter {i}");
    }

    [Fact]
    public void ParametersGetGradientsWhenTheInputDoesNotRequireGrad()
    {
        var step = new Step(2);
        var x = Input(false);
        step.Forward(x).square().sum().backward();
        var gp = Grads(step);
        step.ZeroGrad();
        var y = GradientCheckpoint.Apply(step.Forward, x);
        Assert.True(y.requires_grad);
        y.square().sum().backward();
        Assert.Null(x.grad);
        var gk = Grads(step);
        for (int i = 0; i < gp.Length; i++) AssertClose(gp[i], gk[i], $"parameter {i}");
    }

    [Fact]
    public void ThreeCheckpointedStepsInALoopMatchPlainBackprop()
    {
        // DRaFT-K with K = 3: the same step module applied three times, then a loss on the result.
        var step = new Step(3);
        var x0 = Input(true);
        var x = x0;
        for (int k = 0; k < 3; k++) x = step.Forward(x);
        (x.tanh().sum() + x.square().mean()).backward();
        var gx = x0.grad!.clone();
        var gp = Grads(step);

        x0.grad!.zero_();
        step.ZeroGrad();
        step.Calls = 0;
        x = x0;
        for (int k = 0; k < 3; k++) x = GradientCheckpoint.Apply(step.Forward, x);
        (x.tanh().sum() + x.square().mean()).backward();
        Assert.Equal(6, step.Calls);
        AssertClose(gx, x0.grad!, "input grad");
        var gk = Grads(step);
        for (int i = 0; i < gp.Length; i++) AssertClose(gp[i], gk[i], $"parameter {i}");
    }

    [Fact]
    public void NestedCheckpointsMatchPlainBackprop()
    {
        var inner = new Step(4);
        var outer = new Step(5);
        Tensor Plain(Tensor t) => outer.Forward(inner.Forward(t));
        Tensor Nested(Tensor t) => outer.Forward(GradientCheckpoint.Apply(inner.Forward, t));

        var x = Input(true);
        Plain(x).square().sum().backward();
        var gx = x.grad!.clone();
        var gi = Grads(inner);
        var go = Grads(outer);
        x.grad!.zero_();
        inner.ZeroGrad();
        outer.ZeroGrad();

        GradientCheckpoint.Apply(Nested, x).square().sum().backward();
        AssertClose(gx, x.grad!, "input grad");
        var gi2 = Grads(inner);
        var go2 = Grads(outer);
        for (int i = 0; i < gi.Length; i++) AssertClose(gi[i], gi2[i], $"inner parameter {i}");
        for (int i = 0; i < go.Length; i++) AssertClose(go[i], go2[i], $"outer parameter {i}");
    }

    [Fact]
    public void TrainingStepsUnderDisposeScopesMatchPlainAndDoNotLeak()
    {
        float[] Train(bool checkpoint, List<long> live)
        {
            var step = new Step(6);
            var opt = torch.optim.SGD(step.Parameters, 0.05);
            var losses = new List<float>();
            for (int it = 0; it < 4; it++)
            {
                using var scope = NewDisposeScope();
                opt.zero_grad();
                var x = Input(false);
                for (int k = 0; k < 3; k++) x = checkpoint ? GradientCheckpoint.Apply(step.Forward, x) : step.Forward(x);
                var loss = x.square().mean();
                loss.backward();
                opt.step();
                losses.Add(loss.item<float>());
                scope.Dispose();
                live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            }
            return losses.ToArray();
        }

        var plainLive = new List<long>();
        var ckLive = new List<long>();
        var plain = Train(false, plainLive);
        var ck = Train(true, ckLive);
        for (int i = 0; i < plain.Length; i++) Assert.Equal(plain[i], ck[i], 5);
        Assert.True(plain[^1] < plain[0]);
        // After the first iteration (which creates the optimiser's state), live tensor counts must stay flat.
        Assert.True(ckLive.Skip(1).Distinct().Count() == 1, $"live tensors per iteration: {string.Join(",", ckLive)}");
    }

    [Fact]
    public void ContextTensorsSurvivePerStepScopesAndNonLeafContextGetsGradients()
    {
        // A "text encoder" weight produces a non-leaf embedding shared by three checkpointed steps, and each step's
        // timestep-like tensor is created inside that step's own dispose scope, as a sampling loop does.
        var step = new Step(9);
        var encoder = randn(new long[] { 6, 6 }, generator: new torch.Generator(10)).requires_grad_(true);
        Tensor StepFn(Tensor x, IReadOnlyList<Tensor> ctx) => step.Forward(x) + 0.1 * x.matmul(ctx[0]) * ctx[1];

        Tensor Run(bool checkpoint)
        {
            var emb = encoder.tanh();
            var x = Input(false);
            for (int k = 0; k < 3; k++)
            {
                using var scope = NewDisposeScope();
                var t = full(1, 1, 1, 1, 0.5 + k, dtype: float32);
                x = (checkpoint ? GradientCheckpoint.Apply(StepFn, x, emb, t) : StepFn(x, new[] { emb, t })).MoveToOuterDisposeScope();
            }
            return x.square().mean();
        }

        Run(false).backward();
        var ge = encoder.grad!.clone();
        var gp = Grads(step);
        encoder.grad!.zero_();
        step.ZeroGrad();

        Run(true).backward();
        AssertClose(ge, encoder.grad!, "encoder grad");
        var gk = Grads(step);
        for (int i = 0; i < gp.Length; i++) AssertClose(gp[i], gk[i], $"parameter {i}");
    }

    [Fact]
    public void AFailingRecomputeSurfacesAsAnExceptionInsteadOfKillingTheProcess()
    {
        var w = randn(new long[] { 4, 4 }, generator: new torch.Generator(12)).requires_grad_(true);
        int calls = 0;
        Tensor Fails(Tensor t) => ++calls == 1 ? t.matmul(w) : throw new InvalidOperationException("boom on recompute");
        var x = Input(false).reshape(-1, 4)[0..3];
        var loss = GradientCheckpoint.Apply(Fails, x).sum();
        var e = Assert.Throws<InvalidOperationException>(() => GradientCheckpoint.Backward(loss));
        Assert.Equal("boom on recompute", e.InnerException!.Message);

        // Nested: the innermost failure is the one reported; afterwards checkpointing works normally again.
        calls = 0;
        var nested = GradientCheckpoint.Apply(t => GradientCheckpoint.Apply(Fails, t).tanh(), x).sum();
        e = Assert.Throws<InvalidOperationException>(() => GradientCheckpoint.Backward(nested));
        Assert.Equal("boom on recompute", e.InnerException!.Message);

        GradientCheckpoint.Backward(GradientCheckpoint.Apply(t => t.matmul(w), x).sum());
        Assert.True(allclose(w.grad!, x.sum(new long[] { 0 }).unsqueeze(1).expand(4, 4)));
    }

    [Fact]
    public void WithoutGradItIsAPlainCall()
    {
        var step = new Step(8);
        var x = Input(true);
        using (no_grad())
        {
            var y = GradientCheckpoint.Apply(step.Forward, x);
            Assert.False(y.requires_grad);
            Assert.Equal(1, step.Calls);
            AssertClose(step.Forward(x), y, "output");
        }
    }
}
