using HcService.Contract.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Model;

// Axes: N tokens (B*T flattened), D width, E experts, K top-k, A assignments (N*K).

/// <summary>What one MoE layer reports from a forward pass: its auxiliary losses (scalars, in the graph; not owned by
/// any dispose scope when returned) and the tokens each expert received (for telemetry).</summary>
public sealed record MoeStats(Tensor LoadBalancingLoss, Tensor RouterZLoss, long[] ExpertTokens);

/// <summary>
/// OLMoE's Mixture-of-Experts feed-forward: a router in fp32, softmax over experts, top-k selection (no
/// renormalisation of the selected probabilities, as OLMoE), dropless dispatch (tokens grouped by expert, each
/// expert's SwiGLU runs on exactly its tokens, outputs scatter-added back weighted by the gate).
/// Aux losses follow Switch / megablocks, which OLMoE was trained with:
///   load balancing  LB = E * sum_e f_e * P_e, f_e = (assignments to e) / (N K), P_e = mean_n p_{n,e}
///   router z-loss   Z  = mean_n (logsumexp_e logits_{n,e})^2
/// Experts that receive no token do not run, so they get no gradient.
/// </summary>
public sealed class MoeFeedForward : nn.Module
{
    readonly Linear router;                 // D -> E, run in fp32 or wider
    readonly ModuleList<SwiGlu> experts;
    readonly int topK;

    public MoeFeedForward(string name, long dModel, MoeConfig c) : base(name)
    {
        router = nn.Linear(dModel, c.Experts, hasBias: false);
        experts = new ModuleList<SwiGlu>([.. Enumerable.Range(0, c.Experts).Select(e => new SwiGlu($"{e}", dModel, c.ExpertHidden))]);
        topK = c.TopK;
        RegisterComponents();
    }

    internal Linear Router => router;
    internal IList<SwiGlu> Experts => experts;

    public (Tensor y, MoeStats stats) Forward(Tensor x_BTD)
    {
        using var scope = NewDisposeScope();
        var D = x_BTD.shape[^1];
        var E = experts.Count;
        var x_ND = x_BTD.reshape(-1, D);
        var N = x_ND.shape[0];

        // The router never runs below fp32 (OLMoE): low-precision activations are upcast for it.
        var lowPrecision = x_ND.dtype is ScalarType.BFloat16 or ScalarType.Float16;
        var logits_NE = lowPrecision
            ? nn.functional.linear(x_ND.to_type(ScalarType.Float32), router.weight!.to_type(ScalarType.Float32))
            : router.forward(x_ND);
        var probs_NE = logits_NE.softmax(-1);
        var (gates_NK, experts_NK) = probs_NE.topk(topK, -1);

        // Group the N*K assignments by expert. A stable sort keeps token order inside each group.
        var experts_A = experts_NK.flatten();
        var order_A = experts_A.sort(stable: true).Indices;
        var tokens_A = order_A.div(topK, rounding_mode: RoundingMode.floor);
        var gates_A = gates_NK.flatten().index_select(0, order_A).to_type(x_ND.dtype);
        var counts_E = experts_A.bincount(null, E);
        var counts = counts_E.cpu().data<long>().ToArray();   // one host sync per layer: group sizes are data-dependent

        var y_ND = zeros_like(x_ND);
        long offset = 0;
        for (var e = 0; e < E; e++)
        {
            var n = counts[e];
            if (n == 0) continue;
            var tok = tokens_A.narrow(0, offset, n);
            var out_nD = experts[e].forward(x_ND.index_select(0, tok)) * gates_A.narrow(0, offset, n).unsqueeze(1);
            y_ND.index_add_(0, tok, out_nD, 1);
            offset += n;
        }

        var f_E = counts_E.to_type(logits_NE.dtype) / (N * topK);
        var P_E = probs_NE.mean([0L]);
        var lb = (f_E * P_E).sum() * E;
        var z = logits_NE.logsumexp(-1).square().mean();
        // The aux losses must outlive the dispose scopes of the connection that wraps this sublayer, so they leave
        // every scope here; LanguageModel.Forward attaches them to its own scope (a direct caller owns them).
        var stats = new MoeStats(lb.DetachFromDisposeScope(), z.DetachFromDisposeScope(), counts);
        return (y_ND.view(x_BTD.shape).MoveToOuterDisposeScope(), stats);
    }
}
