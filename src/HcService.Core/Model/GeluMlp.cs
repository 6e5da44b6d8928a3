using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace HcService.Core.Model;

/// <summary>ViT's MLP: D -> F with bias, GELU (the exact erf form), F -> D with bias.</summary>
public sealed class GeluMlp : nn.Module<Tensor, Tensor>
{
    readonly Linear fc1;   // D -> F
    readonly Linear fc2;   // F -> D

    public GeluMlp(string name, long dModel, long hidden) : base(name)
    {
        fc1 = nn.Linear(dModel, hidden, hasBias: true);
        fc2 = nn.Linear(hidden, dModel, hasBias: true);
        RegisterComponents();
    }

    internal Linear InputProjection => fc1;
    internal Linear OutputProjection => fc2;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(nn.functional.gelu(fc1.forward(x))).MoveToOuterDisposeScope();
    }
}
