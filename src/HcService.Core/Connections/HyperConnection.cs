using HcService.Core.Config;
using HcService.Core.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Connections;

// Axes: B batch, T time, N streams (expansion rate n), M = N + 1 (the sublayer input, then the N mixed streams), D width.

/// <summary>
/// A hyper-connection around one sublayer T (Zhu et al., ICLR 2025; HC-SPEC section 3), static or dynamic.
///
/// Static (eqs. 3-5), per token with H in R^{N x D}:
///   x  = A_m^T H          the sublayer input
///   H' = A_r^T H          the mixed residual streams
///   H_out = B^T T(x) + H'
/// A_m and A_r form one N x (N+1) width-connection matrix WC = [A_m | A_r], so [x ; H'] = WC^T H is ONE
/// batched matmul over the stream axis.
///
/// Dynamic (eqs. 10-13) adds, from the normalised streams Hn = norm(H) (per stream, over D):
///   WC(H) = s_a * tanh(Hn W_wc) + WC      W_wc in R^{D x (N+1)}   row i from stream i
///   B(H)  = s_b * tanh(Hn W_b)  + B       W_b  in R^{D}
/// W_wc and W_b are stored as one D x (N+2) matrix, so a single matmul over Hn gives both.
/// The `tanh` flag off drops the tanh (the paper's "w/o tanh" ablation).
///
/// Init (eq. 14): B = 1, A_m = one-hot at (k mod N) for sublayer index k, A_r = I, W = 0, s_a = s_b = 0.01,
/// so at init every stream carries the same vector and the network equals Pre-Norm residual (HC-SPEC 3.2).
/// </summary>
public sealed class HyperConnection : nn.Module, IConnection
{
    readonly int rate;
    readonly bool tanh;
#pragma warning disable IDE0044 // fields are rebound by Module.to()
    Parameter static_beta;          // B  [N]
    Parameter static_alpha;         // WC = [A_m | A_r]  [N, N+1]
    Parameter? dynamic_proj;        // [W_wc | W_b]  [D, N+2]
    Parameter? dynamic_alpha_scale; // s_a  [1]
    Parameter? dynamic_beta_scale;  // s_b  [1]
    readonly Norm? norm;            // DHC's stream norm (the host model's norm type)
#pragma warning restore IDE0044

    public HyperConnection(string name, ModelConfig model, int sublayerIndex) : base(name)
    {
        var c = model.Connection;
        if (!c.IsHyper) throw new ArgumentException($"HyperConnection needs static-hc or dynamic-hc, got {c.Type}");
        if (c.Rate < 1) throw new ArgumentOutOfRangeException(nameof(model), c.Rate, "expansion rate must be >= 1");
        rate = c.Rate;
        tanh = c.Tanh;
        var n = c.Rate;
        static_beta = new Parameter(ones(n));
        var wc = zeros(n, n + 1);
        wc[sublayerIndex % n, 0].fill_(1.0);               // A_m: one-hot at k mod n
        wc.narrow(1, 1, n).copy_(eye(n));                  // A_r: identity
        static_alpha = new Parameter(wc);
        if (c.Type == ConnectionType.DynamicHc)
        {
            dynamic_proj = new Parameter(zeros(model.DModel, n + 2));
            dynamic_alpha_scale = new Parameter(full(1, 0.01f));
            dynamic_beta_scale = new Parameter(full(1, 0.01f));
            norm = new Norm("norm", model.DModel, model.Norm, model.NormEps);
        }
        RegisterComponents();
    }

    public int Rate => rate;
    public bool IsDynamic => dynamic_proj is not null;

    /// <summary>Learned parameters of one HC module (HC-SPEC section 6).</summary>
    public static long ParameterCount(ModelConfig model)
    {
        var c = model.Connection;
        if (!c.IsHyper) return 0;
        long n = c.Rate;
        var count = n * (n + 2);                                                    // B and [A_m | A_r]
        if (c.Type == ConnectionType.DynamicHc)
            count += model.DModel * (n + 2) + 2 + Norm.ParameterCount(model.Norm, model.DModel);
        return count;
    }

    /// <summary>Matmul FLOPs per token of one HC module's forward (elementwise work is not counted, as in the base count).</summary>
    public static long ForwardFlopsPerToken(ModelConfig model)
    {
        var c = model.Connection;
        if (!c.IsHyper) return 0;
        long n = c.Rate, d = model.DModel;
        var flops = 2 * n * (n + 1) * d;                                            // [x ; H'] = WC^T H
        if (c.Type == ConnectionType.DynamicHc) flops += 2 * n * d * (n + 2);       // Hn [W_wc | W_b]
        return flops;
    }

    /// <summary>The static matrices (B [N], A_m [N], A_r [N, N]), for analysis and tests.</summary>
    public (Tensor B, Tensor Am, Tensor Ar) StaticWeights =>
        (static_beta.detach(), static_alpha.detach().select(1, 0), static_alpha.detach().narrow(1, 1, rate));

    /// <summary>Sets the static matrices (tests build the paper's sequential and parallel arrangements with it).</summary>
    public void SetStatic(Tensor B, Tensor Am, Tensor Ar)
    {
        using var _ = no_grad();
        static_beta.copy_(B);
        static_alpha.select(1, 0).copy_(Am);
        static_alpha.narrow(1, 1, rate).copy_(Ar);
    }

    /// <summary>The per-token weights: WC [B, T, N, N+1] (or [N, N+1] static) and B [B, T, N] (or [N] static).</summary>
    public (Tensor wc, Tensor beta) Weights(Tensor h_BTND)
    {
        if (dynamic_proj is null) return (static_alpha, static_beta);
        using var scope = NewDisposeScope();
        var proj_BTNP = norm!.forward(h_BTND).matmul(dynamic_proj);                 // [B, T, N, N+2]
        if (tanh) proj_BTNP = proj_BTNP.tanh();
        var wc = proj_BTNP.narrow(-1, 0, rate + 1) * dynamic_alpha_scale! + static_alpha;
        var beta = proj_BTNP.select(-1, rate + 1) * dynamic_beta_scale! + static_beta;
        return (wc.MoveToOuterDisposeScope(), beta.MoveToOuterDisposeScope());
    }

    public Tensor Forward(Tensor h_BTND, Norm sublayerNorm, Func<Tensor, Tensor> sublayer)
    {
        using var scope = NewDisposeScope();
        var (wc, beta) = Weights(h_BTND);
        // [x ; H'] = WC^T H over the stream axis: [.., M, N] @ [B, T, N, D] -> [B, T, M, D]   (eqs. 3, 4)
        var mix_BTMD = wc.transpose(-1, -2).matmul(h_BTND);
        var x_BTD = mix_BTMD.select(2, 0);
        var hRes_BTND = mix_BTMD.narrow(2, 1, rate);
        var y_BTD = sublayer(sublayerNorm.forward(x_BTD));
        // H_out = B^T y + H'   (eq. 5): stream j gets B_j * y
        var out_BTND = hRes_BTND + beta.unsqueeze(-1) * y_BTD.unsqueeze(2);
        return out_BTND.MoveToOuterDisposeScope();
    }
}
