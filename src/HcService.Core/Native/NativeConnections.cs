using System.Runtime.InteropServices;
using HcService.Contract.Config;
using HcService.Core.Connections;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Native;

/// <summary>Which implementation a hyper-connection runs (the `hc bench step` compares them in one process).</summary>
public enum ConnectionKernels
{
    /// <summary>The fused CPU kernels where they apply (fp32 on CPU, the library built), else tensor ops.</summary>
    Auto,
    /// <summary>Tensor ops only: the reference, and what CUDA and bf16 run.</summary>
    Tensor,
}

/// <summary>
/// The fused CPU kernels of Native/hc_connections.c for static and dynamic HC, as two TorchSharp custom autograd
/// functions: the width connection (norm, projection, weights, x = A_m^T H, H' = A_r^T H in one pass over each token's
/// streams) and the depth connection (H' + B y). Each keeps only the streams, the per-token weights and the stream
/// statistics (norm(H) is never kept: backward makes it again from H), and runs its tokens in as many ranges as torch
/// has threads. Used for fp32 CPU tensors when the library was built (HcService.Core.csproj) and HC_CONNECTION_KERNELS
/// is not "tensor"; every other case runs the tensor path (<see cref="StreamMixing"/>), which NativeConnectionTests
/// checks these kernels against.
/// </summary>
public static unsafe class NativeConnections
{
    const string Library = "libhc_connections.so";

    /// <summary>Whether the library is loaded (and not switched off with HC_CONNECTION_KERNELS=tensor).</summary>
    public static bool Available { get; }

    /// <summary>Why the kernels are not available, when they are not (for `hc bench step`).</summary>
    public static string Status { get; }

    // The signatures of Native/hc_connections.c.
    static readonly delegate* unmanaged<long, long, int, int, float*, float*, float*, float*, float, float, int, int, float*, float,
        float*, float*, float*, float*, float*, float*, void> widthForward;
    static readonly delegate* unmanaged<long, long, int, int, float*, float*, float, float, int, int, float*, float*, float*, float*, float*,
        float*, float*, float*, float*, float*, float*, float*, float*, float*, void> widthBackward;
    static readonly delegate* unmanaged<long, long, int, int, float*, float*, float*, float*, float*, void> depthForward;
    static readonly delegate* unmanaged<long, long, int, int, float*, float*, float*, float*, float*, float*, float*, float*, float*, void> depthBackward;
    static readonly delegate* unmanaged<long, long, int, int, float*, float*, float*, void> mixForward;
    static readonly delegate* unmanaged<long, long, int, int, float*, float*, float*, float*, float*, void> mixBackward;

    static NativeConnections()
    {
        if (Environment.GetEnvironmentVariable("HC_CONNECTION_KERNELS") is "tensor")
        {
            Status = "switched off (HC_CONNECTION_KERNELS=tensor)";
            return;
        }
        var path = Path.Combine(AppContext.BaseDirectory, Library);
        if (!File.Exists(path) || !NativeLibrary.TryLoad(path, out var lib))
        {
            Status = $"not built ({Library} is not beside the program: no C compiler at build time)";
            return;
        }
        widthForward = (delegate* unmanaged<long, long, int, int, float*, float*, float*, float*, float, float, int, int, float*, float,
            float*, float*, float*, float*, float*, float*, void>)NativeLibrary.GetExport(lib, "hc_width_forward");
        widthBackward = (delegate* unmanaged<long, long, int, int, float*, float*, float, float, int, int, float*, float*, float*, float*, float*,
            float*, float*, float*, float*, float*, float*, float*, float*, float*, void>)NativeLibrary.GetExport(lib, "hc_width_backward");
        depthForward = (delegate* unmanaged<long, long, int, int, float*, float*, float*, float*, float*, void>)NativeLibrary.GetExport(lib, "hc_depth_forward");
        depthBackward = (delegate* unmanaged<long, long, int, int, float*, float*, float*, float*, float*, float*, float*, float*, float*, void>)NativeLibrary.GetExport(lib, "hc_depth_backward");
        mixForward = (delegate* unmanaged<long, long, int, int, float*, float*, float*, void>)NativeLibrary.GetExport(lib, "hc_mix_forward");
        mixBackward = (delegate* unmanaged<long, long, int, int, float*, float*, float*, float*, float*, void>)NativeLibrary.GetExport(lib, "hc_mix_backward");
        Available = true;
        Status = "fused CPU kernels";
    }

    /// <summary>Whether <paramref name="h"/> (the streams entering a connection) can take the fused path.</summary>
    public static bool Supports(Tensor h) =>
        Available && h.device_type == DeviceType.CPU && h.dtype == ScalarType.Float32 && h.shape[^1] <= 4096 && h.shape[^2] <= 64;

    [DllImport("LibTorchSharp")]
    static extern IntPtr THSTensor_data(IntPtr handle);

    static nint Ptr(Tensor? t) => t is null ? 0 : THSTensor_data(t.Handle);
    static float* F(nint p) => (float*)p;

    /// <summary>The depth node's gradient of the streams, on its way to the width node of the same connection.</summary>
    sealed class Link
    {
        public Tensor? DepthGrad;
    }

    /// <summary>The settings of one connection the kernels need besides its tensors.</summary>
    public sealed record Settings(int Rate, bool Dynamic, bool Tanh, bool Rms, float Eps);

    /// <summary>One hyper-connection around <paramref name="sublayer"/> with the fused kernels: the streams
    /// [B, T, N, D] in, the streams out.</summary>
    public static Tensor Forward(Settings s, Tensor h_BTND, Tensor alpha, Tensor beta, Tensor? proj, Tensor? scaleA, Tensor? scaleB,
        Tensor? normWeight, Norm sublayerNorm, Func<Tensor, Tensor> sublayer)
    {
        using var scope = NewDisposeScope();
        var (B, T, N, D) = (h_BTND.shape[0], h_BTND.shape[1], h_BTND.shape[2], h_BTND.shape[3]);
        var X = B * T;
        var h_XND = h_BTND.reshape(X, N, D).contiguous();
        // The depth node reads the same streams but hands its gradient of them to the width node (which runs later in
        // backward) instead of to autograd: the width kernel adds its own part into that buffer, one tensor, no sum.
        var link = new Link();
        var width = WidthFunction.apply(s, link, h_XND, alpha, beta, proj, scaleA, scaleB, normWeight);   // x, the weights, B
        var y_BTD = sublayer(sublayerNorm.forward(width[0].view(B, T, D)));
        var out_XND = DepthFunction.apply(s, link, h_XND.detach(), width[1], width[2], y_BTD.reshape(X, D).contiguous())[0];
        return out_XND.view(B, T, N, D).MoveToOuterDisposeScope();
    }

    /// <summary>A stream-mixing connection whose per-token weights are made elsewhere (mHC, mHC-lite: tensor ops) with the
    /// mixing kernels: x = A_m^T H, then out = A_r^T H + B y, as HC's fused path mixes (the weights' gradients go back
    /// through autograd to whatever made them).</summary>
    public static Tensor Mixing(Tensor h_BTND, Tensor amT_X1N, Tensor arT_XNN, Tensor beta_XN1, Norm sublayerNorm, Func<Tensor, Tensor> sublayer)
    {
        using var scope = NewDisposeScope();
        var (B, T, N, D) = (h_BTND.shape[0], h_BTND.shape[1], h_BTND.shape[2], h_BTND.shape[3]);
        var X = B * T;
        var h_XND = h_BTND.reshape(X, N, D).contiguous();
        var wc_XNM = cat([amT_X1N.transpose(1, 2), arT_XNN.transpose(1, 2)], 2).contiguous();   // [A_m | A_r] per token, row i from stream i
        var link = new Link();
        var x_X1D = MixFunction.apply(link, h_XND, wc_XNM)[0];
        var y_BTD = sublayer(sublayerNorm.forward(x_X1D.view(B, T, D)));
        var out_XND = DepthFunction.apply(null!, link, h_XND.detach(), wc_XNM, beta_XN1.contiguous(), y_BTD.reshape(X, D).contiguous())[0];
        return out_XND.view(B, T, N, D).MoveToOuterDisposeScope();
    }

    /// <summary>A backward body in a scope of its own: the gradients it returns leave the scope and are handed to the engine
    /// (released at the next backward, <see cref="Recompute.Release"/>); the engine's incoming gradients are disposed at
    /// once (the engine keeps its own references; ours would live to the step's end).</summary>
    static List<Tensor> HandBack(List<Tensor> grads, Func<DisposeScope, List<Tensor>> body)
    {
        Recompute.Release();
        List<Tensor> result;
        using (var scope = NewDisposeScope())
        {
            result = body(scope);
            foreach (var g in result) if (g is not null) scope.Detach(g);
        }
        foreach (var g in grads) g?.Dispose();
        Recompute.HandOver(result);
        return result;
    }

    /// <summary>Token ranges, one per torch thread, run in parallel.</summary>
    static void Ranges(long X, Action<int, long, long> run)
    {
        var parts = (int)Math.Clamp(Math.Min(get_num_threads(), X / 64), 1, 64);
        if (parts == 1) { run(0, 0, X); return; }
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, p => run(p, X * p / parts, X * (p + 1) / parts));
    }

    static int Parts(long X) => (int)Math.Clamp(Math.Min(get_num_threads(), X / 64), 1, 64);

    sealed class WidthFunction : autograd.MultiTensorFunction<WidthFunction>
    {
        public override string Name => "HcNativeWidth";

        // vars: settings, link, H [X, N, D], alpha [N, N+1], beta [N], then (dynamic) proj [N+2, D], s_a [1], s_b [1], norm weight [D] or null.
        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var s = (Settings)vars[0];
            var h = (Tensor)vars[2];
            var (alpha, beta) = (((Tensor)vars[3]).contiguous(), ((Tensor)vars[4]).contiguous());
            var proj = (vars[5] as Tensor)?.contiguous();
            var normW = (vars[8] as Tensor)?.contiguous();
            var (X, N, D) = (h.shape[0], (int)h.shape[1], (int)h.shape[2]);
            float sa = vars[6] is Tensor a ? a.ToSingle() : 0, sb = vars[7] is Tensor b ? b.ToSingle() : 0;
            var x = empty(X, 1, D);
            var betaOut = empty(X, N, 1);
            var wc = empty(X, N, N + 1);
            var mean = s.Dynamic ? empty(X, N) : null;
            var rstd = s.Dynamic ? empty(X, N) : null;
            var act = s.Dynamic ? empty(X, N, N + 2) : null;
            var p = (H: Ptr(h), Alpha: Ptr(alpha), Beta: Ptr(beta), Proj: Ptr(proj), NormW: Ptr(normW), X: Ptr(x),
                BetaOut: Ptr(betaOut), Wc: Ptr(wc), Mean: Ptr(mean), Rstd: Ptr(rstd), Act: Ptr(act));
            Ranges(X, (_, t0, t1) => widthForward(t0, t1, N, (int)D, F(p.H), F(p.Alpha), F(p.Beta), F(p.Proj), sa, sb, s.Tanh ? 1 : 0, s.Rms ? 1 : 0,
                F(p.NormW), s.Eps, F(p.X), F(p.BetaOut), F(p.Wc), F(p.Mean), F(p.Rstd), F(p.Act)));
            // The weights are an output too (the depth connection's input): kept detached, so that the node does not keep itself.
            ctx.save_for_backward([h, wc.detach(), mean!, rstd!, act!, proj!, normW!]);
            ctx.save_data("settings", s);
            ctx.save_data("link", vars[1]);
            ctx.save_data("scales", (sa, sb));
            ctx.set_materialize_grads(false);
            return [x, wc, betaOut];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grads) => HandBack(grads, _ => WidthBackward(ctx, grads));

        static List<Tensor> WidthBackward(autograd.AutogradContext ctx, List<Tensor> grads)
        {
            var s = (Settings)ctx.get_data("settings");
            var (sa, sb) = ((float, float))ctx.get_data("scales");
            var saved = ctx.get_saved_variables();
            var (h, wc, mean, rstd, act, proj, normW) = (saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], saved[6]);
            var (X, N, D) = (h.shape[0], (int)h.shape[1], (int)h.shape[2]);
            Tensor Grad(int i, long[] shape) => grads[i] is { IsInvalid: false } g ? g.contiguous() : zeros(shape);
            var dx = Grad(0, [X, 1, D]);
            var dwcIn = Grad(1, [X, N, N + 1]);
            var dbeta = Grad(2, [X, N, 1]);
            var parts = Parts(X);
            var link = (Link)ctx.get_data("link");
            var dh = link.DepthGrad ?? zeros(X, N, D);   // the depth node's part, which the kernel adds to
            link.DepthGrad = null;
            var dalpha = zeros(parts, N, N + 1);
            var dbetaS = zeros(parts, N);
            var dW = s.Dynamic ? zeros(parts, N + 2, D) : null;
            var dscale = s.Dynamic ? zeros(parts, 2) : null;
            var dnorm = normW is not null ? zeros(parts, D) : null;
            var p = (H: Ptr(h), Proj: Ptr(proj), NormW: Ptr(normW), Wc: Ptr(wc), Mean: Ptr(mean), Rstd: Ptr(rstd), Act: Ptr(act),
                Dx: Ptr(dx), DwcIn: Ptr(dwcIn), Dbeta: Ptr(dbeta), Dh: Ptr(dh), Dalpha: Ptr(dalpha), DbetaS: Ptr(dbetaS), DW: Ptr(dW),
                Dscale: Ptr(dscale), Dnorm: Ptr(dnorm));
            Ranges(X, (part, t0, t1) => widthBackward(t0, t1, N, (int)D, F(p.H), F(p.Proj), sa, sb, s.Tanh ? 1 : 0, s.Rms ? 1 : 0, F(p.NormW),
                F(p.Wc), F(p.Mean), F(p.Rstd), F(p.Act), F(p.Dx), F(p.DwcIn), F(p.Dbeta), F(p.Dh), F(p.Dalpha) + part * N * (N + 1), F(p.DbetaS) + part * N,
                p.DW == 0 ? null : F(p.DW) + (long)part * (N + 2) * D, p.Dscale == 0 ? null : F(p.Dscale) + part * 2,
                p.Dnorm == 0 ? null : F(p.Dnorm) + (long)part * D));
            var scales = dscale?.sum(0L);
            return [null!, null!, dh, dalpha.sum(0L), dbetaS.sum(0L), dW?.sum(0L)!, scales?.narrow(0, 0, 1)!, scales?.narrow(0, 1, 1)!, dnorm?.sum(0L)!];
        }
    }

    sealed class MixFunction : autograd.MultiTensorFunction<MixFunction>
    {
        public override string Name => "HcNativeMix";

        // vars: link, H [X, N, D], the weights [X, N, N+1].
        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (h, wc) = ((Tensor)vars[1], (Tensor)vars[2]);
            var (X, N, D) = (h.shape[0], (int)h.shape[1], (int)h.shape[2]);
            var x = empty(X, 1, D);
            var p = (H: Ptr(h), Wc: Ptr(wc), X: Ptr(x));
            Ranges(X, (_, t0, t1) => mixForward(t0, t1, N, D, F(p.H), F(p.Wc), F(p.X)));
            ctx.save_for_backward([h, wc]);
            ctx.save_data("link", vars[0]);
            ctx.set_materialize_grads(false);
            return [x];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grads) => HandBack(grads, _ =>
        {
            var saved = ctx.get_saved_variables();
            var (h, wc) = (saved[0], saved[1]);
            var (X, N, D) = (h.shape[0], (int)h.shape[1], (int)h.shape[2]);
            var link = (Link)ctx.get_data("link");
            var dh = link.DepthGrad ?? zeros(X, N, D);   // the depth node's part, which the kernel adds to
            link.DepthGrad = null;
            var dx = grads[0] is { IsInvalid: false } g ? g.contiguous() : zeros(X, 1, D);
            var dwc = empty(X, N, N + 1);
            var p = (H: Ptr(h), Wc: Ptr(wc), Dx: Ptr(dx), Dh: Ptr(dh), Dwc: Ptr(dwc));
            Ranges(X, (_, t0, t1) => mixBackward(t0, t1, N, D, F(p.H), F(p.Wc), F(p.Dx), F(p.Dh), F(p.Dwc)));
            return [null!, dh, dwc];
        });
    }

    sealed class DepthFunction : autograd.MultiTensorFunction<DepthFunction>
    {
        public override string Name => "HcNativeDepth";

        // vars: settings, link, H [X, N, D] (detached: its gradient goes through the link), the width connection's weights
        // [X, N, N+1], B [X, N, 1], y [X, D].
        public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var (h, wc, beta, y) = ((Tensor)vars[2], ((Tensor)vars[3]).contiguous(), ((Tensor)vars[4]).contiguous(), (Tensor)vars[5]);
            ctx.save_data("link", vars[1]);
            var (X, N, D) = (h.shape[0], (int)h.shape[1], (int)h.shape[2]);
            var output = empty(X, N, D);
            var p = (H: Ptr(h), Wc: Ptr(wc), Beta: Ptr(beta), Y: Ptr(y), Out: Ptr(output));
            Ranges(X, (_, t0, t1) => depthForward(t0, t1, N, (int)D, F(p.H), F(p.Wc), F(p.Beta), F(p.Y), F(p.Out)));
            ctx.save_for_backward([h, wc, beta, y]);
            ctx.set_materialize_grads(false);
            return [output];
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grads) => HandBack(grads, scope =>
        {
            var result = DepthBackward(ctx, grads);
            if (((Link)ctx.get_data("link")).DepthGrad is { } toWidth) scope.Detach(toWidth);   // it outlives this call
            return result;
        });

        static List<Tensor> DepthBackward(autograd.AutogradContext ctx, List<Tensor> grads)
        {
            var saved = ctx.get_saved_variables();
            var (h, wc, beta, y) = (saved[0], saved[1], saved[2], saved[3]);
            var (X, N, D) = (h.shape[0], (int)h.shape[1], (int)h.shape[2]);
            if (grads[0] is not { IsInvalid: false } g) return [null!, null!, null!, null!, null!, null!];
            var dout = g.contiguous();
            var (dh, dwc, dbeta, dy) = (empty(X, N, D), empty(X, N, N + 1), empty(X, N, 1), empty(X, D));
            var p = (H: Ptr(h), Wc: Ptr(wc), Beta: Ptr(beta), Y: Ptr(y), Dout: Ptr(dout), Dh: Ptr(dh), Dwc: Ptr(dwc), Dbeta: Ptr(dbeta), Dy: Ptr(dy));
            Ranges(X, (_, t0, t1) => depthBackward(t0, t1, N, D, F(p.H), F(p.Wc), F(p.Beta), F(p.Y), F(p.Dout), F(p.Dh), F(p.Dwc), F(p.Dbeta), F(p.Dy)));
            ((Link)ctx.get_data("link")).DepthGrad = dh;   // to the width node, which adds its part (see Forward)
            return [null!, null!, null!, dwc, dbeta, dy];
        }
    }
}
