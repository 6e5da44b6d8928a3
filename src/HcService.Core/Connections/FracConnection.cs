using HcService.Contract.Config;
using HcService.Core.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Connections;

// Axes: B batch, T time, M fractions (fraction rate m), F = D / M the fraction width, D width.

/// <summary>
/// A Frac-Connection around one sublayer (arXiv 2503.14125; docs/hc-math.md section 11.1), static or dynamic. The trunk
/// holds the hidden state split into M fractions of width F = D / M (one state, not M copies), per token F_in R^{M x F}:
///   x     = concat of the rows of Y^T F          the sublayer input (width D)
///   F'    = A^T F                               the mixed fractions
///   F_out = diag(B) split(T(x)) + F'
/// Y and A are stored as one M x 2M matrix [Y | A], so [x ; F'] comes from ONE batched matmul with [Y | A]^T.
/// Dynamic: from the normalised fractions Fn = norm(F) (per fraction, over F),
///   [Y | A](F) = s_a * tanh(Fn W) + [Y | A]     W in R^{F x 2M}, row i from fraction i
///   B(F)       = s_b * tanh(Fn W_b) + B         W_b in R^{F}
/// stored as one (2M + 1) x F matrix like a Linear weight.
/// Init: Y = A = I, B = 1, W = 0, s_a = s_b = 0.01: exactly the Pre-Norm residual network (same weights, no factor).
/// </summary>
public sealed class FracConnection : nn.Module, IConnection, IRecomputable
{
    readonly int fractions;
    readonly bool tanh;
#pragma warning disable IDE0044 // fields are rebound by Module.to()
    Parameter static_beta;          // B  [M]
    Parameter static_alpha;         // [Y | A]  [M, 2M]
    Parameter? dynamic_proj;        // [W | W_b]^T  [2M+1, F]
    Parameter? dynamic_alpha_scale; // s_a  [1]
    Parameter? dynamic_beta_scale;  // s_b  [1]
    readonly Norm? norm;            // the fraction norm (the host model's norm type, over F)
#pragma warning restore IDE0044

    public FracConnection(string name, ModelConfig model) : base(name)
    {
        var c = model.Connection;
        if (!c.IsFrac) throw new ArgumentException($"FracConnection needs frac, got {c.Type}");
        if (c.Fractions < 1 || model.DModel % c.Fractions != 0)
            throw new ArgumentOutOfRangeException(nameof(model), c.Fractions, $"fractions must divide dModel = {model.DModel}");
        fractions = c.Fractions;
        tanh = c.Tanh;
        var m = c.Fractions;
        static_beta = new Parameter(ones(m));
        static_alpha = new Parameter(cat([eye(m), eye(m)], 1));
        if (c.Dynamic)
        {
            var width = model.DModel / m;
            dynamic_proj = new Parameter(zeros(2 * m + 1, width));
            dynamic_alpha_scale = new Parameter(full(1, 0.01f));
            dynamic_beta_scale = new Parameter(full(1, 0.01f));
            norm = new Norm("norm", width, model.StreamNorm, model.NormEps);
        }
        RegisterComponents();
    }

    public int Fractions => fractions;

    public HcService.Contract.Jobs.RecomputeMode Recompute { private get; set; }

    /// <summary>The static matrices (B [M], Y [M, M], A [M, M]).</summary>
    public (Tensor B, Tensor Y, Tensor A) StaticWeights =>
        (static_beta.detach(), static_alpha.detach().narrow(1, 0, fractions), static_alpha.detach().narrow(1, fractions, fractions));

    /// <summary>Sets the static matrices (tests).</summary>
    public void SetStatic(Tensor B, Tensor Y, Tensor A)
    {
        using var _ = no_grad();
        static_beta.copy_(B);
        static_alpha.narrow(1, 0, fractions).copy_(Y);
        static_alpha.narrow(1, fractions, fractions).copy_(A);
    }

    public Tensor Forward(Tensor h_BTMF, Norm sublayerNorm, Func<Tensor, Tensor> sublayer)
    {
        using var scope = NewDisposeScope();
        var (B, T, M, F) = (h_BTMF.shape[0], h_BTMF.shape[1], h_BTMF.shape[2], h_BTMF.shape[3]);
        var X = B * T;
        var h_XMF = h_BTMF.reshape(X, M, F);
        var (wT_X2MM, beta_XM1) = dynamic_proj is not null && Recompute == HcService.Contract.Jobs.RecomputeMode.Hc && Connections.Recompute.Applies(training)
            ? Recomputed(h_XMF) : Weights(h_XMF);
        // [x ; F'] = [Y | A]^T F: one batched matmul, [X, 2M, M] @ [X, M, F].
        var both_X2MF = wT_X2MM.bmm(h_XMF);
        var x_BTD = both_X2MF.narrow(1, 0, M).reshape(B, T, M * F);
        var res_XMF = both_X2MF.narrow(1, M, M);
        var y_XMF = sublayer(sublayerNorm.forward(x_BTD)).reshape(X, M, F);
        return (res_XMF + beta_XM1 * y_XMF).view(B, T, M, F).MoveToOuterDisposeScope();
    }

    /// <summary>The dynamic weights as a node that keeps only the fractions and makes norm(F) and its projection again in backward.</summary>
    (Tensor WT, Tensor Beta) Recomputed(Tensor h_XMF)
    {
        var w = Connections.Recompute.Weights(h =>
        {
            var (wT, beta) = Weights(h);
            return [wT, beta];
        }, h_XMF, [.. parameters()]);
        return (w[0], w[1]);
    }

    /// <summary>Every token's [Y | A]^T [X, 2M, M] and B [X, M, 1]: broadcast when static, from one projection of the
    /// normalised fractions when dynamic.</summary>
    public (Tensor WT, Tensor Beta) Weights(Tensor h_XMF)
    {
        using var scope = NewDisposeScope();
        var (X, M) = (h_XMF.shape[0], h_XMF.shape[1]);
        Tensor wT, beta;
        if (dynamic_proj is null)
        {
            wT = static_alpha.t().expand(X, 2 * M, M);
            beta = static_beta.view(1, M, 1).expand(X, M, 1);
        }
        else
        {
            var proj_XMP = nn.functional.linear(norm!.forward(h_XMF), dynamic_proj);   // [X, M, 2M+1]
            if (tanh) proj_XMP = proj_XMP.tanh();
            wT = (proj_XMP.narrow(-1, 0, 2 * M) * dynamic_alpha_scale! + static_alpha).transpose(1, 2);
            beta = proj_XMP.narrow(-1, 2 * M, 1) * dynamic_beta_scale! + static_beta.view(M, 1);
        }
        return (wT.MoveToOuterDisposeScope(), beta.MoveToOuterDisposeScope());
    }
}
