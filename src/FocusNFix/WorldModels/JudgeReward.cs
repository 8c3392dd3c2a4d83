using FocusNFix.Rewards;
using TorchSharp;
using static TorchSharp.torch;

namespace FocusNFix.WorldModels;

/// <summary>
/// The alignment judge as an <see cref="IReward"/> (type <c>alignment-judge</c>): the mean alignment of each image with
/// its prompt. It is a guard and an evaluation figure, never optimised (it has no gradient, and a judge that is
/// trained against stops measuring).
/// </summary>
public sealed class JudgeReward : IReward, IDisposable
{
    readonly AlignmentJudge _judge;

    public JudgeReward(AlignmentJudge judge) => _judge = judge;

    public string Name => "judge_alignment";

    public Tensor Score(Tensor images, IReadOnlyList<string> prompts)
    {
        using var _ = no_grad();
        using var scores = _judge.Alignment(images, prompts);
        return scores.to(images.device);
    }

    public void To(Device device) => _judge.to(device);

    public void Dispose() => _judge.Dispose();
}
