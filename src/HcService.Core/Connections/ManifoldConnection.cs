using HcService.Contract.Config;
using HcService.Core.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Connections;

// Axes: B batch, T time, N streams, D width, R residual-mixing logits (N^2 for mHC, N! for mHC-lite), P = 2N + R.

/// <summary>
/// The manifold-constrained hyper-connections (docs/hc-math.md sections 11.2-11.3): n copies of the hidden state as in HC,
/// with every weight computed per token from the flattened streams x~ = vec(H) in R^{N D}:
///   r = sqrt(mean(x~^2) + eps);  [h_pre, h_post, h_res] = (x~ phi) / r          phi in R^{N D x P}, init 0
///   A_m = sigmoid(a_pre h_pre + b_pre);  B = 2 sigmoid(a_post h_post + b_post);  A_r = Mix(a_res h_res + b_res)
///   x = A_m^T H;  H' = A_r^T H;  H_out = B y + H'
/// Mix is Sinkhorn-Knopp for mHC (<see cref="MhcConnection"/>) and a convex combination of permutation matrices for
/// mHC-lite (<see cref="MhcLiteConnection"/>); both give a doubly stochastic A_r. a_* start at 0.01.
/// </summary>
public abstract class ManifoldConnection : nn.Module, IStreamMixing, IRecomputable
{
    /// <summary>The bias magnitude c of the identity init, max(8, ln(2000 (n - 1))): A_r's off-diagonal mass per row is
    /// (n - 1) e^-c &lt;= 5e-4 and sigmoid(-c) &lt;= 3.4e-4, so A_r is the identity and A_m the home one-hot to within 1e-3
    /// at any rate (c = 8.70 at n = 4).</summary>
    public static double IdentityBias(int n) => Math.Max(8.0, Math.Log(2000.0 * (n - 1)));

    /// <summary>mHC-lite's bias for every permutation but the identity (the public mhc-lite code's).</summary>
    public const double LitePermutationBias = 8.0;

    protected readonly int rate;
    readonly double eps;
#pragma warning disable IDE0044 // fields are rebound by Module.to()
    Parameter phi;              // [P, N*D] (laid out like a Linear weight)
    Parameter mhc_scale;        // a_pre, a_post, a_res  [3]
    Parameter mhc_bias_pre;     // b_pre  [N]
    Parameter mhc_bias_post;    // b_post [N]
    Parameter mhc_bias_res;     // b_res  [R]
#pragma warning restore IDE0044

    protected ManifoldConnection(string name, ModelConfig model, int sublayerIndex, int mixingLogits) : base(name)
    {
        var c = model.Connection;
        if (!c.IsManifold) throw new ArgumentException($"{GetType().Name} needs mhc or mhc-lite, got {c.Type}");
        rate = c.Rate;
        eps = model.NormEps;
        var n = c.Rate;
        var home = sublayerIndex % n;
        phi = new Parameter(zeros(2 * n + mixingLogits, n * model.DModel));
        mhc_scale = new Parameter(full(3, 0.01f));
        var (readHome, readElsewhere, writeHome, writeElsewhere) = c.MhcInit == MhcInit.Lite
            ? (1.0, -1.0, 1.0, -1.0)
            : (IdentityBias(n), -IdentityBias(n), 0.0, 0.0);
        var pre = full(n, readElsewhere); pre[home] = readHome;
        var post = full(n, writeElsewhere); post[home] = writeHome;
        mhc_bias_pre = new Parameter(pre.to_type(get_default_dtype()));
        mhc_bias_post = new Parameter(post.to_type(get_default_dtype()));
        mhc_bias_res = new Parameter(InitialMixingBias(n, c.MhcInit).to_type(get_default_dtype()));
    }

    public int Rate => rate;

    /// <summary>b_res at init.</summary>
    protected abstract Tensor InitialMixingBias(int n, MhcInit init);

    /// <summary>A_r [X, N, N] (doubly stochastic) from its logits [X, R].</summary>
    public abstract Tensor Mix(Tensor logits_XR);

    /// <summary>The weights at zero projection (the biases alone): B = 2 sigmoid(b_post), A_m = sigmoid(b_pre),
    /// A_r = Mix(b_res).</summary>
    public (Tensor B, Tensor Am, Tensor Ar) StaticWeights
    {
        get
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var b = (2 * mhc_bias_post.detach().sigmoid()).MoveToOuterDisposeScope();
            var am = mhc_bias_pre.detach().sigmoid().MoveToOuterDisposeScope();
            var ar = Mix(mhc_bias_res.detach().unsqueeze(0))[0].MoveToOuterDisposeScope();
            return (b, am, ar);
        }
    }

    public Tensor Forward(Tensor h_BTND, Norm sublayerNorm, Func<Tensor, Tensor> sublayer) => StreamMixing.Forward(this, h_BTND, sublayerNorm, sublayer);

    public HcService.Contract.Jobs.RecomputeMode Recompute { private get; set; }

    public HcService.Core.Native.ConnectionKernels Kernels { get; set; }

    /// <summary>Under recompute = hc the flattened streams' RMS, projection and Sinkhorn (or softmax) are made again in backward.</summary>
    public bool RecomputesWeights => Recompute == HcService.Contract.Jobs.RecomputeMode.Hc;

    /// <summary>Every token's A_m^T [X, 1, N], A_r^T [X, N, N] and B [X, N, 1], from one projection of the flattened
    /// streams divided by their RMS. Computed in float32 whatever the model's compute dtype (as the norms are): in bf16
    /// (8 significant bits) A_r's columns would be off 1 by ~0.4%, and the doubly stochastic constraint is mHC's point;
    /// the weights are cast to the trunk's dtype for the two matmuls only.</summary>
    public (Tensor AmT, Tensor ArT, Tensor Beta) Weights(Tensor h_XND)
    {
        using var scope = NewDisposeScope();
        var (X, N, D) = (h_XND.shape[0], h_XND.shape[1], h_XND.shape[2]);
        var compute = h_XND.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        Tensor Up(Tensor t) => t.dtype == compute ? t : t.to_type(compute);
        var flat_XK = Up(h_XND.reshape(X, N * D));
        var rms_X1 = (flat_XK.square().mean([-1], keepdim: true) + eps).sqrt();
        var proj_XP = nn.functional.linear(flat_XK, Up(phi)) / rms_X1;
        var scale = Up(mhc_scale);
        var pre = proj_XP.narrow(1, 0, N) * scale[0] + Up(mhc_bias_pre);
        var post = proj_XP.narrow(1, N, N) * scale[1] + Up(mhc_bias_post);
        var res = proj_XP.narrow(1, 2 * N, proj_XP.shape[1] - 2 * N) * scale[2] + Up(mhc_bias_res);
        Tensor Down(Tensor t) => t.dtype == h_XND.dtype ? t : t.to_type(h_XND.dtype);
        var amT = Down(pre.sigmoid().view(X, 1, N));
        var beta = Down((2 * post.sigmoid()).view(X, N, 1));
        var arT = Down(Mix(res).transpose(1, 2));
        return (amT.MoveToOuterDisposeScope(), arT.MoveToOuterDisposeScope(), beta.MoveToOuterDisposeScope());
    }
}

/// <summary>mHC (arXiv 2512.24880): A_r = Sinkhorn-Knopp(exp(logits)) over n^2 logits, alternating row and column
/// normalisations in the log domain (logsumexp), so that neither overflow nor underflow stops it or its gradient.</summary>
public sealed class MhcConnection : ManifoldConnection
{
    readonly int iterations;

    public MhcConnection(string name, ModelConfig model, int sublayerIndex) : base(name, model, sublayerIndex, model.Connection.Rate * model.Connection.Rate)
    {
        iterations = model.Connection.SinkhornIterations;
        RegisterComponents();
    }

    /// <summary>0 on the diagonal and -c off it (identity: A_r within 1e-3 of I), or -8 off it (lite, the public code's).</summary>
    protected override Tensor InitialMixingBias(int n, MhcInit init) =>
        ((eye(n, dtype: ScalarType.Float64) - 1) * (init == MhcInit.Lite ? LitePermutationBias : IdentityBias(n))).reshape(n * n);

    public override Tensor Mix(Tensor logits_XR)
    {
        using var scope = NewDisposeScope();
        var n = rate;
        var log_XNN = logits_XR.reshape(logits_XR.shape[0], n, n);
        for (var i = 0; i < iterations; i++)
        {
            log_XNN = log_XNN - log_XNN.logsumexp(2, keepdim: true);   // rows sum to 1
            log_XNN = log_XNN - log_XNN.logsumexp(1, keepdim: true);   // columns sum to 1
        }
        return log_XNN.exp().MoveToOuterDisposeScope();
    }
}

/// <summary>mHC-lite (arXiv 2601.05732): A_r = sum over the n! permutation matrices P_p of softmax(logits)_p P_p, exactly
/// doubly stochastic without iterations. The identity is permutation 0 (lexicographic order).</summary>
public sealed class MhcLiteConnection : ManifoldConnection
{
    readonly float[] permutations;   // [n!, N*N] row-major; not a module tensor (no buffer in checkpoints)
    // One copy per device and dtype, made once (a host-to-device copy per forward would stall a GPU stream).
    readonly Dictionary<(DeviceType, int, ScalarType), Tensor> onDevice = [];

    public MhcLiteConnection(string name, ModelConfig model, int sublayerIndex)
        : base(name, model, sublayerIndex, (int)ConnectionConfig.Factorial(model.Connection.Rate))
    {
        using (var p = PermutationMatrices(model.Connection.Rate)) permutations = p.data<float>().ToArray();
        RegisterComponents();
    }

    /// <summary>0 for the identity permutation, -8 for the others.</summary>
    protected override Tensor InitialMixingBias(int n, MhcInit init)
    {
        var b = full(ConnectionConfig.Factorial(n), -LitePermutationBias, dtype: ScalarType.Float64);
        b[0] = 0.0;
        return b;
    }

    public override Tensor Mix(Tensor logits_XR)
    {
        using var scope = NewDisposeScope();
        var n = rate;
        var weights_XR = logits_XR.softmax(-1);
        var where = (weights_XR.device.type, weights_XR.device.index, weights_XR.dtype);
        Tensor perms_RK;
        lock (onDevice)
            if (!onDevice.TryGetValue(where, out perms_RK!))
                onDevice[where] = perms_RK = tensor(permutations, [permutations.Length / (n * n), n * n], weights_XR.dtype, weights_XR.device).DetachFromDisposeScope();
        return weights_XR.matmul(perms_RK).view(-1, n, n).MoveToOuterDisposeScope();
    }

    /// <summary>The n! permutation matrices in lexicographic order, each flattened row-major: P[i, p(i)] = 1.</summary>
    public static Tensor PermutationMatrices(int n)
    {
        var all = new List<int[]>();
        void Build(int[] p, int k)
        {
            if (k == n) { all.Add((int[])p.Clone()); return; }
            for (var v = 0; v < n; v++)
            {
                if (p.Take(k).Contains(v)) continue;
                p[k] = v;
                Build(p, k + 1);
            }
        }
        Build(new int[n], 0);
        var m = new float[all.Count * n * n];
        for (var q = 0; q < all.Count; q++)
            for (var i = 0; i < n; i++) m[q * n * n + i * n + all[q][i]] = 1f;
        return tensor(m, [all.Count, n * n]);
    }
}
