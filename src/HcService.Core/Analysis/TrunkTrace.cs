using HcService.Contract.Analysis;
using HcService.Core.Connections;
using HcService.Core.Model;
using static TorchSharp.torch;

namespace HcService.Core.Analysis;

// Axes: B batch, T time, N streams, D width.

/// <summary>
/// Runs a model's trunk on a sample batch, as <see cref="LanguageModel.Forward"/> does (embed, expand, blocks,
/// reduce), and shows the analysis what passes by: the trunk state entering every connection, and the reduced hidden
/// state after the embedding and after every block. No gradients, eval mode (no dropout), restored afterwards.
/// A test checks that the final hidden state equals the model's own forward pass, so this walk cannot drift from it.
/// </summary>
static class TrunkTrace
{
    /// <param name="onConnection">(k, connection k, trunk state entering it: [B, T, N, D] for HC, [B, T, D] otherwise).</param>
    /// <param name="onLayer">(l, reduced hidden state [B, T, D]): l = 0 after the embedding, l = 1..L after block l - 1.</param>
    /// <returns>The final reduced hidden state [B, T, D] (in the caller's dispose scope).</returns>
    public static Tensor Run(LanguageModel model, Tensor tokens_BT, Action<int, IConnection, Tensor>? onConnection, Action<int, Tensor>? onLayer)
    {
        if (tokens_BT.dim() != 2 || tokens_BT.shape[0] < 1 || tokens_BT.shape[1] < 1)
            throw new ArgumentException($"the sample batch must be token ids [B, T] with B, T >= 1, got shape [{string.Join(", ", tokens_BT.shape)}]");
        var c = model.Config;
        var wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            var h = Streams.Expand(model.Embed(tokens_BT), c.Connection);
            onLayer?.Invoke(0, Streams.Reduce(h, c.Connection));
            for (var l = 0; l < model.Blocks.Count; l++)
            {
                var block = model.Blocks[l];
                h = block.Forward(h, _ => { }, (i, input) => onConnection?.Invoke(2 * l + i, i == 0 ? block.AttnConnection : block.MlpConnection, input));
                onLayer?.Invoke(l + 1, Streams.Reduce(h, c.Connection));
            }
            return Streams.Reduce(h, c.Connection).MoveToOuterDisposeScope();
        }
        finally
        {
            model.train(wasTraining);
        }
    }
}
