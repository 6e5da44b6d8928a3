using HcService.Contract.Config;
using HcService.Core.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Connections;

// Axes: B batch, T time, N streams (expansion rate n), M = N + 1 (the sublayer input, then the N mixed streams), D width.

/// <summary>
/// A hyper-connection around one sublayer T (Zhu et al., ICLR 2025; docs/hc-math.md section 3), static or dynamic.
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
/// W_wc and W_b are stored as one (N+2) x D matrix (transposed, like a Linear weight), so one projection of Hn gives both.
/// The `tanh` flag off drops the tanh (the paper's "w/o tanh" ablation).
///
/// Init (eq. 14): B = 1, A_m = one-hot at (k mod N) for sublayer index k, A_r = I, W = 0, s_a = s_b = 0.01,
/// so at init every stream carries the same vector and the network equals Pre-Norm residual (docs/hc-math.md section 3.4).
/// </summary>
public sealed class HyperConnection : nn.Module, IStreamMixing, IRecomputable
{
    readonly int rate;
    readonly bool tanh;
#pragma warning disable IDE0044 // fields are rebound by Module.to()
    Parameter static_beta;          // B  [N]
    Parameter static_alpha;         // WC = [A_m | A_r]  [N, N+1]
    Parameter? dynamic_proj;        // [W_wc | W_b]^T  [N+2, D] (laid out like a Linear weight)
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
            dynamic_proj = new Parameter(zeros(n + 2, model.DModel));
            dynamic_alpha_scale = new Parameter(full(1, 0.01f));
            dynamic_beta_scale = new Parameter(full(1, 0.01f));
            norm = new Norm("norm", model.DModel, model.StreamNorm, model.NormEps);
        }
        RegisterComponents();
    }

    public int Rate => rate;

    public HcService.Contract.Jobs.RecomputeMode Recompute { get; set; }

    /// <summary>Dynamic HC under recompute = hc: norm(H) and its projection are made again in backward, not kept.</summary>
    public bool RecomputesWeights => dynamic_proj is not null && Recompute == HcService.Contract.Jobs.RecomputeMode.Hc;

    /// <summary>The static matrices (B [N], A_m [N], A_r [N, N]), for analysis and tests.</summary>
    public (Tensor B, Tensor Am, Tensor Ar) StaticWeights =>
        (static_beta.detach(), static_alpha.detach().select(1, 0), static_alpha.detach().narrow(1, 1, rate));

    /// <summary>DHC's learned scales (s_a, s_b); null for static HC.</summary>
    public (double Alpha, double Beta)? Scales => dynamic_alpha_scale is null ? null
        : (dynamic_alpha_scale.ToDouble(), dynamic_beta_scale!.ToDouble());   // any dtype (a float64 or bf16 model too)

    /// <summary>Sets the static matrices (tests build the paper's sequential and parallel arrangements with it).</summary>
    public void SetStatic(Tensor B, Tensor Am, Tensor Ar)
    {
        using var _ = no_grad();
        static_beta.copy_(B);
        static_alpha.select(1, 0).copy_(Am);
        static_alpha.narrow(1, 1, rate).copy_(Ar);
    }

    /// <summary>Which implementation runs: the fused CPU kernels where they apply (Auto), or tensor ops.</summary>
    public HcService.Core.Native.ConnectionKernels Kernels { get; set; }

    /// <summary>The fused CPU kernels (<see cref="HcService.Core.Native.NativeConnections"/>) for fp32 CPU streams when
    /// they are built, unless recompute = hc (whose stream replay runs on tensor ops); else the tensor path.</summary>
    public Tensor Forward(Tensor h_BTND, Norm sublayerNorm, Func<Tensor, Tensor> sublayer) =>
        Kernels == HcService.Core.Native.ConnectionKernels.Auto && Recompute != HcService.Contract.Jobs.RecomputeMode.Hc && HcService.Core.Native.NativeConnections.Supports(h_BTND)
            ? HcService.Core.Native.NativeConnections.Forward(new(rate, dynamic_proj is not null, tanh, norm?.Kind == NormKind.RmsNorm, (float)(norm?.Eps ?? 0)),
                h_BTND, static_alpha, static_beta, dynamic_proj, dynamic_alpha_scale, dynamic_beta_scale, norm?.Weight, sublayerNorm, sublayer)
            : StreamMixing.Forward(this, h_BTND, sublayerNorm, sublayer);

    /// <summary>
    /// The connection weights of every token, laid out for the batched matmuls: A_m^T [X, 1, N], A_r^T [X, N, N] and
    /// B [X, N, 1] (X = tokens). Static weights are broadcast (stride 0, no copy); dynamic ones are computed from
    /// the normalised streams with ONE projection, [W_wc | W_b] applied to Hn.
    /// </summary>
    public (Tensor AmT, Tensor ArT, Tensor Beta) Weights(Tensor h_XND)
    {
        using var scope = NewDisposeScope();
        var (X, N) = (h_XND.shape[0], h_XND.shape[1]);
        Tensor wcT_XMN, beta_XN1;
        if (dynamic_proj is null)
        {
            wcT_XMN = static_alpha.t().expand(X, N + 1, N);
            beta_XN1 = static_beta.view(1, N, 1).expand(X, N, 1);
        }
        else
        {
            var proj_XNP = nn.functional.linear(norm!.forward(h_XND), dynamic_proj);   // [X, N, N+2]
            if (tanh) proj_XNP = proj_XNP.tanh();
            var wc_XNM = proj_XNP.narrow(-1, 0, N + 1) * dynamic_alpha_scale! + static_alpha;
            wcT_XMN = wc_XNM.transpose(1, 2).contiguous();                               // small: X*(N+1)*N
            beta_XN1 = (proj_XNP.narrow(-1, N + 1, 1) * dynamic_beta_scale! + static_beta.view(N, 1));
        }
        var amT = wcT_XMN.narrow(1, 0, 1).MoveToOuterDisposeScope();
        var arT = wcT_XMN.narrow(1, 1, N).MoveToOuterDisposeScope();
        return (amT, arT, beta_XN1.MoveToOuterDisposeScope());
    }
}
