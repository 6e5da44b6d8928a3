using HcService.Contract.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Model;

/// <summary>
/// The model's norm over the last axis: LayerNorm without affine parameters (OLMo dense), RMSNorm with a
/// learned weight (OLMoE) or LayerNorm with a learned weight and bias (ViT). TorchSharp has no RMSNorm module, so both live here. Low-precision inputs are
/// normalised in fp32 and cast back (norms stay fp32 under the hand-made bf16 recipe).
/// </summary>
public sealed class Norm : nn.Module<Tensor, Tensor>
{
    readonly long[] shape;
    readonly double eps;
    readonly NormKind kind;
#pragma warning disable IDE0044 // fields are rebound by Module.to()
    Parameter? weight;
    Parameter? bias;
#pragma warning restore IDE0044

    public Norm(string name, long dim, NormKind kind, double eps) : base(name)
    {
        shape = [dim];
        this.kind = kind;
        this.eps = eps;
        if (kind is NormKind.RmsNorm or NormKind.AffineLayerNorm) weight = new Parameter(ones(dim));
        if (kind == NormKind.AffineLayerNorm) bias = new Parameter(zeros(dim));
        RegisterComponents();
    }

    internal NormKind Kind => kind;
    internal double Eps => eps;
    /// <summary>RMSNorm's or affine LayerNorm's learned weight; null for LayerNorm.</summary>
    internal Parameter? Weight => weight;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var lowPrecision = x.dtype is ScalarType.BFloat16 or ScalarType.Float16;
        var xf = lowPrecision ? x.to_type(ScalarType.Float32) : x;
        Tensor y;
        if (kind is NormKind.LayerNorm or NormKind.AffineLayerNorm)
        {
            // Affine weights in the input's precision too (a bf16 copy of the model keeps its norms' weights in bf16).
            using var w = weight is null || !lowPrecision ? null : weight.to_type(ScalarType.Float32);
            using var b = bias is null || !lowPrecision ? null : bias.to_type(ScalarType.Float32);
            y = nn.functional.layer_norm(xf, shape, w ?? weight, b ?? bias, eps);
        }
        else
        {
            // RMSNorm: x / sqrt(mean(x^2) + eps) * weight
            y = xf * rsqrt(xf.square().mean([-1L], keepdim: true) + eps) * weight!;
        }
        if (lowPrecision) y = y.to_type(x.dtype);
        return y.MoveToOuterDisposeScope();
    }
}
