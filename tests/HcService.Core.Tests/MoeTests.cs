using HcService.Contract.Config;
using HcService.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HcService.Core.Tests;

public class MoeTests
{
    [Fact]
    public void OneExpertTopOneEqualsDenseSwiGlu()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var moe = new MoeFeedForward("moe", 16, new MoeConfig { Experts = 1, TopK = 1, ExpertHidden = 24 });
        var dense = new SwiGlu("ff", 16, 24);
        Assert.Equal(2, TestModels.CopySharedWeights(moe.Experts[0], dense));
        var x = randn(3, 5, 16);
        using var _ = no_grad();
        var (y, stats) = moe.Forward(x);
        Assert.True(TestModels.MaxAbsDiff(y, dense.forward(x)) <= 1e-6);
        Assert.Equal([15L], stats.ExpertTokens);
    }

    /// <summary>
    /// A constructed routing: width = experts = 4, router = 3 I, so token e_i has logits 3 e_i and goes to expert i
    /// with probability p = e^3 / (e^3 + 3); the other experts get q = 1 / (e^3 + 3) each.
    /// </summary>
    [Fact]
    public void AuxLossesEqualTheirFormulasOnAConstructedRouting()
    {
        using var scope = NewDisposeScope();
        var moe = new MoeFeedForward("moe", 4, new MoeConfig { Experts = 4, TopK = 1, ExpertHidden = 8 });
        using (no_grad()) moe.Router.weight!.copy_(eye(4) * 3);
        int[] route = [0, 0, 1, 2, 0, 3];
        var x = stack(route.Select(i => nn.functional.one_hot(tensor((long)i), 4).to_type(ScalarType.Float32)).ToArray()).unsqueeze(0);

        var (_, stats) = moe.Forward(x);

        Assert.Equal([3L, 1L, 1L, 1L], stats.ExpertTokens);
        double e3 = Math.Exp(3), p = e3 / (e3 + 3), q = 1 / (e3 + 3);
        double N = route.Length;
        // f_e = tokens_e / (N K); P_e = mean over tokens of p_{n,e}
        double[] f = [3 / N, 1 / N, 1 / N, 1 / N];
        double[] P = [(3 * p + 3 * q) / N, (p + 5 * q) / N, (p + 5 * q) / N, (p + 5 * q) / N];
        var lb = 4 * f.Zip(P, (a, b) => a * b).Sum();
        var z = Math.Pow(Math.Log(e3 + 3), 2);   // every token: logsumexp = log(e^3 + 3)
        Assert.Equal(lb, stats.LoadBalancingLoss.item<float>(), 5);
        Assert.Equal(z, stats.RouterZLoss.item<float>(), 4);
    }

    [Fact]
    public void UniformRoutingGivesLoadBalancingLossOne()
    {
        using var scope = NewDisposeScope();
        var moe = new MoeFeedForward("moe", 4, new MoeConfig { Experts = 4, TopK = 2, ExpertHidden = 8 });
        using (no_grad()) moe.Router.weight!.zero_();   // all probabilities 1/E
        var (_, stats) = moe.Forward(randn(1, 8, 4));
        Assert.Equal(1.0, stats.LoadBalancingLoss.item<float>(), 5);
        Assert.Equal(Math.Pow(Math.Log(4), 2), stats.RouterZLoss.item<float>(), 5);
        Assert.Equal(16L, stats.ExpertTokens.Sum());   // N K assignments
    }

    [Fact]
    public void OnlySelectedExpertsReceiveGradients()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var moe = new MoeFeedForward("moe", 4, new MoeConfig { Experts = 4, TopK = 1, ExpertHidden = 8 });
        using (no_grad()) moe.Router.weight!.copy_(eye(4) * 3);
        int[] route = [0, 1, 1, 2, 0];   // expert 3 gets nothing
        var x = stack(route.Select(i => nn.functional.one_hot(tensor((long)i), 4).to_type(ScalarType.Float32) + 0.1f).ToArray()).unsqueeze(0);
        var (y, _) = moe.Forward(x);
        y.square().sum().backward();
        for (var e = 0; e < 3; e++)
            Assert.All(moe.Experts[e].parameters(), p => Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0, $"expert {e} got no gradient"));
        Assert.All(moe.Experts[3].parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0, "unselected expert 3 got a gradient"));
        Assert.True(moe.Router.weight!.grad!.abs().sum().item<float>() > 0, "router got no gradient through the gates");
    }

    [Fact]
    public void ModelLossAddsWeightedAuxLosses()
    {
        using var scope = NewDisposeScope();
        var c = TestModels.Tiny(ConnectionConfig.DynamicHc(2), Architecture.Moe) with
        {
            Moe = new() { Experts = 4, TopK = 2, ExpertHidden = 24, LoadBalancingCoef = 0.5, RouterZLossCoef = 0.25 },
        };
        var m = TestModels.Build(c);
        var tokens = TestModels.Tokens(2, 16, 64);
        var output = m.Forward(tokens);
        var loss = m.Loss(output, tokens);
        Assert.Equal(2, output.Moe.Count);
        var lb = output.Moe.Average(s => s.LoadBalancingLoss.item<float>());
        var z = output.Moe.Average(s => s.RouterZLoss.item<float>());
        Assert.Equal(loss.CrossEntropy.item<float>() + 0.5 * lb + 0.25 * z, loss.Total.item<float>(), 4);
    }
}
