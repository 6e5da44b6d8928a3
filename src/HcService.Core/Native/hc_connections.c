// Fused CPU kernels for the hyper-connection of one sublayer (docs/hc-math.md sections 3.2, 3.3 and 6.6), fp32,
// streams laid out [X tokens, N streams, D width] and contiguous. The width kernel does in one pass over a token's
// N x D streams what the tensor path does in a dozen kernels: the stream norm, the dynamic projection, the weights and
// x = A_m^T H. The depth kernel makes the output A_r^T H + B y from the same streams, so the mixed streams H' are never
// written and read back; the backward kernels likewise. Each call handles tokens [t0, t1): the caller runs disjoint ranges on its
// threads, and sums the parameter-gradient partials each range writes to its own buffer. No OpenMP: libtorch brings its
// own runtime, and two in one process fight over the cores.
//
// The tensor path (HyperConnection.Weights, StreamMixing.Forward) is the reference: NativeConnectionTests checks these
// kernels against it, forward and every gradient.
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAXN 64   // expansion rate bound (the job spec allows 1..64)

// Each kernel is compiled twice on x86-64, for AVX2/FMA (x86-64-v3) and for the baseline, and the loader picks the one
// the CPU runs: a library built on one machine never executes an instruction another lacks.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HC_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HC_KERNEL
#endif

// Per-token weights: wc [N, N+1] (column 0 is A_m, columns 1..N are A_r), beta [N]; for dynamic HC also the stream
// statistics (mean, rstd: LayerNorm; rstd: RMSNorm) and act = tanh(proj) or proj [N, N+2], which backward reuses.
static inline __attribute__((always_inline)) void weights(int N, int D, const float* h, const float* alpha, const float* beta_s, const float* W, float sa, float sb,
                    int tanh_on, int rms, const float* norm_w, float eps, float* wc, float* beta, float* mean, float* rstd, float* act)
{
    float n_row[4096];
    const int M = N + 1, P = N + 2;
    if (!W)
    {
        memcpy(wc, alpha, sizeof(float) * N * M);
        memcpy(beta, beta_s, sizeof(float) * N);
        return;
    }
    for (int i = 0; i < N; i++)
    {
        const float* hi = h + (int64_t)i * D;
        // Two passes (the mean, then the squares about it), in double: the statistics torch's norms compute.
        double s = 0, s2 = 0;
        if (!rms) for (int d = 0; d < D; d++) s += hi[d];
        float mu = (float)(s / D);
        for (int d = 0; d < D; d++) { double c = (double)hi[d] - mu; s2 += c * c; }
        float r = (float)(1.0 / sqrt(s2 / D + eps));
        mean[i] = mu;
        rstd[i] = r;
        for (int d = 0; d < D; d++) n_row[d] = (hi[d] - mu) * r * (norm_w ? norm_w[d] : 1.0f);
        for (int p = 0; p < P; p++)
        {
            const float* wp = W + (int64_t)p * D;
            float acc = 0;
            for (int d = 0; d < D; d++) acc += n_row[d] * wp[d];
            act[i * P + p] = tanh_on ? tanhf(acc) : acc;
        }
        for (int m = 0; m < M; m++) wc[i * M + m] = sa * act[i * P + m] + alpha[i * M + m];
        beta[i] = sb * act[i * P + N + 1] + beta_s[i];
    }
}

// x = A_m^T H for one token: the A_m column (0) of its weights w [N, N+1] over its streams h [N, D].
static inline __attribute__((always_inline)) void mix_x(int N, int D, const float* h, const float* w, float* xt)
{
    const int M = N + 1;
    for (int d = 0; d < D; d++) xt[d] = 0;
    for (int i = 0; i < N; i++)
    {
        const float* hi = h + (int64_t)i * D;
        float am = w[i * M];
        for (int d = 0; d < D; d++) xt[d] += am * hi[d];
    }
}

// Forward of the width connection for tokens [t0, t1): x [X, D], beta [X, N], wc [X, N, N+1] (A_m in column 0, A_r
// in columns 1..N); dynamic: mean, rstd [X, N], act [X, N, N+2]. W null: static HC (the dynamic arguments are ignored).
HC_KERNEL void hc_width_forward(int64_t t0, int64_t t1, int N, int D, const float* H, const float* alpha, const float* beta_s,
                      const float* W, float sa, float sb, int tanh_on, int rms, const float* norm_w, float eps,
                      float* x, float* beta, float* wc, float* mean, float* rstd, float* act)
{
    const int M = N + 1, P = N + 2;
    for (int64_t t = t0; t < t1; t++)
    {
        const float* h = H + t * N * D;
        float* w = wc + t * N * M;
        weights(N, D, h, alpha, beta_s, W, sa, sb, tanh_on, rms, norm_w, eps, w, beta + t * N,
                W ? mean + t * N : 0, W ? rstd + t * N : 0, W ? act + t * N * P : 0);
        mix_x(N, D, h, w, x + t * D);
    }
}

// Backward of the width connection for tokens [t0, t1), given dx [X, D], the depth connection's gradient of the
// weights dwc_in [X, N, N+1] (its A_r columns) and dbeta [X, N]: ADDS the gradient through x and the dynamic weights to
// dH [X, N, D] (which holds the depth kernel's part: one buffer, no sum of two) and this range's parameter gradients to
// dalpha [N, N+1], dbeta_s [N] and, dynamic, dW [N+2, D], dscale [2] (s_a, s_b) and dnorm_w [D] (RMSNorm's weight).
HC_KERNEL void hc_width_backward(int64_t t0, int64_t t1, int N, int D, const float* H, const float* W, float sa, float sb, int tanh_on,
                       int rms, const float* norm_w, const float* wc, const float* mean, const float* rstd, const float* act,
                       const float* dx, const float* dwc_in, const float* dbeta, float* dH, float* dalpha, float* dbeta_s,
                       float* dW, float* dscale, float* dnorm_w)
{
    const int M = N + 1, P = N + 2;
    float nh[4096], n0[4096];   // one stream row's gradient and normalised values (D <= 4096 is checked by the caller)
    // The small parameters' gradients are sums over every token of the range: accumulated in double, added at the end.
    double ga[MAXN * (MAXN + 1)], gb[MAXN], gs[2] = { 0, 0 };
    for (int k = 0; k < N * M; k++) ga[k] = 0;
    for (int i = 0; i < N; i++) gb[i] = 0;
    for (int64_t t = t0; t < t1; t++)
    {
        const float* h = H + t * N * D;
        const float* w = wc + t * N * M;
        const float* dxt = dx + t * D;
        float* dh = dH + t * N * D;
        float dwc[MAXN * (MAXN + 1)];
        for (int k = 0; k < N * M; k++) dwc[k] = dwc_in[t * N * M + k];
        for (int i = 0; i < N; i++)
        {
            const float* hi = h + (int64_t)i * D;
            float* dhi = dh + (int64_t)i * D;
            float am = w[i * M];
            float gm = 0;
            for (int d = 0; d < D; d++) { dhi[d] += am * dxt[d]; gm += dxt[d] * hi[d]; }
            dwc[i * M] += gm;
        }
        const float* db = dbeta + t * N;
        for (int i = 0; i < N; i++)
        {
            for (int m = 0; m < M; m++) ga[i * M + m] += dwc[i * M + m];
            gb[i] += db[i];
        }
        if (!W) continue;
        for (int i = 0; i < N; i++)
        {
            const float* hi = h + (int64_t)i * D;
            float* dhi = dh + (int64_t)i * D;
            const float* a = act + (t * N + i) * P;
            float dproj[MAXN + 2];
            for (int m = 0; m < M; m++) { dproj[m] = sa * dwc[i * M + m]; gs[0] += (double)a[m] * dwc[i * M + m]; }
            dproj[N + 1] = sb * db[i];
            gs[1] += (double)a[N + 1] * db[i];
            if (tanh_on) for (int p = 0; p < P; p++) dproj[p] *= 1.0f - a[p] * a[p];
            float mu = mean[t * N + i], r = rstd[t * N + i];
            // n = (h - mu) r (x norm_w for RMSNorm); dn = sum_p dproj_p W_p; dW_p += dproj_p n.
            for (int d = 0; d < D; d++) { n0[d] = (hi[d] - mu) * r; nh[d] = 0; }
            for (int p = 0; p < P; p++)
            {
                const float* wp = W + (int64_t)p * D;
                float* dwp = dW + (int64_t)p * D;
                float g = dproj[p];
                if (norm_w) for (int d = 0; d < D; d++) { nh[d] += g * wp[d]; dwp[d] += g * n0[d] * norm_w[d]; }
                else for (int d = 0; d < D; d++) { nh[d] += g * wp[d]; dwp[d] += g * n0[d]; }
            }
            if (norm_w) for (int d = 0; d < D; d++) { dnorm_w[d] += nh[d] * n0[d]; nh[d] *= norm_w[d]; }
            float sg = 0, sgn = 0;
            for (int d = 0; d < D; d++) { sg += nh[d]; sgn += nh[d] * n0[d]; }
            // LayerNorm: dh = r (g - mean(g) - n0 mean(g n0)); RMSNorm: dh = r (g - n0 mean(g n0)).
            float mg = rms ? 0.0f : sg / D, mgn = sgn / D;
            for (int d = 0; d < D; d++) dhi[d] += r * (nh[d] - mg - n0[d] * mgn);
        }
    }
    for (int k = 0; k < N * M; k++) dalpha[k] += (float)ga[k];
    for (int i = 0; i < N; i++) dbeta_s[i] += (float)gb[i];
    if (W) { dscale[0] += (float)gs[0]; dscale[1] += (float)gs[1]; }
}

// The depth connection for tokens [t0, t1): out_j = sum_i A_r[i][j] H_i + B_j y, from the streams H and the weights wc
// (A_r in columns 1..N) the width kernel made.
HC_KERNEL void hc_depth_forward(int64_t t0, int64_t t1, int N, int D, const float* H, const float* wc, const float* beta, const float* y, float* out)
{
    const int M = N + 1;
    for (int64_t t = t0; t < t1; t++)
    {
        const float* h = H + t * N * D;
        const float* w = wc + t * N * M;
        const float* yt = y + t * D;
        for (int j = 0; j < N; j++)
        {
            float* o = out + (t * N + j) * D;
            float b = beta[t * N + j];
            for (int d = 0; d < D; d++) o[d] = b * yt[d];
            for (int i = 0; i < N; i++)
            {
                const float* hi = h + (int64_t)i * D;
                float ar = w[i * M + 1 + j];
                for (int d = 0; d < D; d++) o[d] += ar * hi[d];
            }
        }
    }
}

// Its backward: dH_i = sum_j A_r[i][j] dout_j; dwc [X, N, N+1] (column 0 zero) with dA_r[i][j] = dout_j . H_i;
// dbeta_j = dout_j . y; dy = sum_j B_j dout_j.
HC_KERNEL void hc_depth_backward(int64_t t0, int64_t t1, int N, int D, const float* H, const float* wc, const float* beta, const float* y,
                       const float* dout, float* dH, float* dwc, float* dbeta, float* dy)
{
    const int M = N + 1;
    for (int64_t t = t0; t < t1; t++)
    {
        const float* h = H + t * N * D;
        const float* w = wc + t * N * M;
        const float* yt = y + t * D;
        const float* g = dout + t * N * D;
        float* dh = dH + t * N * D;
        float* dyt = dy + t * D;
        float* dw = dwc + t * N * M;
        for (int d = 0; d < D; d++) dyt[d] = 0;
        for (int i = 0; i < N; i++) dw[i * M] = 0;
        for (int j = 0; j < N; j++)
        {
            const float* gj = g + (int64_t)j * D;
            float b = beta[t * N + j], s = 0;
            for (int d = 0; d < D; d++) { s += gj[d] * yt[d]; dyt[d] += b * gj[d]; }
            dbeta[t * N + j] = s;
        }
        for (int i = 0; i < N; i++)
        {
            const float* hi = h + (int64_t)i * D;
            float* dhi = dh + (int64_t)i * D;
            for (int d = 0; d < D; d++) dhi[d] = 0;
            for (int j = 0; j < N; j++)
            {
                const float* gj = g + (int64_t)j * D;
                float ar = w[i * M + 1 + j], s = 0;
                for (int d = 0; d < D; d++) { dhi[d] += ar * gj[d]; s += gj[d] * hi[d]; }
                dw[i * M + 1 + j] = s;
            }
        }
    }
}

// x = A_m^T H for tokens [t0, t1) with per-token weights wc [X, N, N+1] made elsewhere (mHC and mHC-lite make theirs
// with tensor ops; the mixing of the streams is the same as HC's, and the depth kernel above serves them too).
HC_KERNEL void hc_mix_forward(int64_t t0, int64_t t1, int N, int D, const float* H, const float* wc, float* x)
{
    const int M = N + 1;
    for (int64_t t = t0; t < t1; t++)
    {
        const float* h = H + t * N * D;
        const float* w = wc + t * N * M;
        mix_x(N, D, h, w, x + t * D);
    }
}

// Its backward: ADDS A_m dx to dH (which holds the depth kernel's part) and writes dwc [X, N, N+1]: column 0 is
// dA_m[i] = dx . H_i, the A_r columns are zero (the depth kernel's gradient of them is summed by autograd).
HC_KERNEL void hc_mix_backward(int64_t t0, int64_t t1, int N, int D, const float* H, const float* wc, const float* dx, float* dH, float* dwc)
{
    const int M = N + 1;
    for (int64_t t = t0; t < t1; t++)
    {
        const float* h = H + t * N * D;
        const float* w = wc + t * N * M;
        const float* dxt = dx + t * D;
        float* dh = dH + t * N * D;
        float* dw = dwc + t * N * M;
        for (int i = 0; i < N; i++)
        {
            const float* hi = h + (int64_t)i * D;
            float* dhi = dh + (int64_t)i * D;
            float am = w[i * M], g = 0;
            for (int d = 0; d < D; d++) { dhi[d] += am * dxt[d]; g += dxt[d] * hi[d]; }
            dw[i * M] = g;
            for (int j = 0; j < N; j++) dw[i * M + 1 + j] = 0;
        }
    }
}
