namespace HcService.Store.Runs;

/// <summary>The states of a run, stored as lower-case text in <c>hc.runs."Status"</c> (docs/design.md, run lifecycle).
/// queued -> running (an attempt holds the lease) -> succeeded | failed | cancelled; running -> cancelling -> cancelled;
/// running -> queued again when an attempt is handed back or its worker is lost.</summary>
public static class RunStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Cancelling = "cancelling";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static readonly string[] All = [Queued, Running, Cancelling, Succeeded, Failed, Cancelled];
    public static readonly string[] Terminal = [Succeeded, Failed, Cancelled];
    public static bool IsTerminal(string s) => Terminal.Contains(s);

    /// <summary>The states in which an attempt holds the run, as an SQL list.</summary>
    internal const string ActiveSql = $"('{Running}', '{Cancelling}')";
}

/// <summary>How one attempt of a run ended, stored in <c>hc.run_attempts."Outcome"</c> (null while it runs).</summary>
public static class AttemptOutcome
{
    public const string Succeeded = RunStatus.Succeeded;
    public const string Failed = RunStatus.Failed;
    public const string Cancelled = RunStatus.Cancelled;
    /// <summary>The attempt checkpointed its current step and handed the run back (its worker was stopping, or gone).</summary>
    public const string Stopped = "stopped";
    /// <summary>The attempt's lease expired: its worker vanished without handing the run back.</summary>
    public const string Lost = "lost";

    public static readonly string[] All = [Succeeded, Failed, Cancelled, Stopped, Lost];
}

/// <summary>The states of an on-demand evaluation job, stored in <c>hc.evaluation_jobs."Status"</c>.</summary>
public static class EvaluationStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";

    public static readonly string[] All = [Queued, Running, Succeeded, Failed];
}
