using HcService.Contract.Jobs;

namespace HcService.Core.Training;

/// <summary>
/// The learning rate as a function of the step (TorchSharp's schedulers keep no savable state, and a pure function
/// resumes exactly). For 0-based step s of S steps, warmup W, peak lr and floor = minLrRatio x lr:
///   s &lt; W:  lr (s + 1) / W                                   (linear warmup, reaching the peak at s = W - 1)
///   else:   p = (s - W) / max(1, S - W), in [0, 1)
///           cosine:   floor + (lr - floor) (1 + cos(pi p)) / 2
///           linear:   lr - (lr - floor) p
///           constant: lr
/// </summary>
public static class LrSchedule
{
    public static double At(TrainingPlan plan, long step)
    {
        if (step < plan.WarmupSteps) return plan.Lr * (step + 1) / plan.WarmupSteps;
        var floor = plan.Lr * plan.MinLrRatio;
        var p = Math.Clamp((double)(step - plan.WarmupSteps) / Math.Max(1, plan.Steps - plan.WarmupSteps), 0, 1);
        return plan.Schedule switch
        {
            LrScheduleKind.Cosine => floor + (plan.Lr - floor) * (1 + Math.Cos(Math.PI * p)) / 2,
            LrScheduleKind.Linear => plan.Lr - (plan.Lr - floor) * p,
            _ => plan.Lr,
        };
    }
}
