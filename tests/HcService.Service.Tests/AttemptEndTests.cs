using HcService.Cli.Children;
using HcService.Core.Training;

namespace HcService.Service.Tests;

/// <summary>How a training attempt ends, from how its loop ended and why it was asked to stop (no database needed).</summary>
public class AttemptEndTests
{
    [Fact]
    public void AStopSignalOrAVanishedWorkerHandsTheRunBackEvenWhenATakeoverCutTheStopShort()
    {
        foreach (var why in RunJobCommand.HandBackReasons)
        {
            Assert.Null(RunJobCommand.EndOf(RunOutcome.Stopped, "cancelled", why));
            // The database was away during the stop, the attempt fenced itself: still a hand-back, never a failure.
            Assert.Null(RunJobCommand.EndOf(RunOutcome.Abandoned, "abandoned without a checkpoint: a newer attempt has the run", why));
        }
    }

    [Fact]
    public void AUsersCancelEndsCancelledAndOnlyErrorsFail()
    {
        Assert.Equal(("cancelled", "cancelled"), RunJobCommand.EndOf(RunOutcome.Stopped, "cancelled", "cancel requested"));
        Assert.Equal(("cancelled", "abandoned"), RunJobCommand.EndOf(RunOutcome.Abandoned, "abandoned", "cancel requested"));
        Assert.Equal(("succeeded", null), RunJobCommand.EndOf(RunOutcome.Succeeded, null, ""));
        Assert.Equal(("failed", "diverged"), RunJobCommand.EndOf(RunOutcome.Failed, "diverged", ""));
    }
}
