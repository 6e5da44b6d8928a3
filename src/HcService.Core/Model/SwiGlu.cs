using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Model;

/// <summary>
/// SwiGLU MLP (Shazeer 2020) as OLMo writes it: one fused input projection D -> 2F, split into (x, gate),
/// silu(gate) * x, then F -> D. No biases. Also one expert of the MoE layer.
/// </summary>
public sealed class SwiGlu : nn.Module<Tensor, Tensor>
{
    readonly Linear ff_proj;   // D -> 2F
    readonly Linear ff_out;    // F -> D

    public SwiGlu(string name, long dModel, long hidden) : base(name)
    {
        ff_proj = nn.Linear(dModel, 2 * hidden, hasBias: false);
        ff_out = nn.Linear(hidden, dModel, hasBias: false);
        RegisterComponents();
    }

    internal Linear InputProjection => ff_proj;
    internal Linear OutputProjection => ff_out;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var xg = ff_proj.forward(x).chunk(2, -1);
        return ff_out.forward(nn.functional.silu(xg[1]) * xg[0]).MoveToOuterDisposeScope();
    }
}
