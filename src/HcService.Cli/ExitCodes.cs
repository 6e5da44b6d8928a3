namespace HcService.Cli;

/// <summary>The exit codes of every `hc` command (README, "Exit codes"): what a CI pipeline branches on.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The run (or the demo's runs) failed or was cancelled.</summary>
    public const int RunFailed = 1;
    /// <summary>Bad input: an invalid spec, option or value, or a run, key or checkpoint that does not exist (400, 404, 409).</summary>
    public const int BadInput = 2;
    /// <summary>The service could not be reached, did not answer in time, or answered with a server error (5xx).</summary>
    public const int Unreachable = 3;
    /// <summary>No key, an unknown or revoked key (401), or a key without the scope the command needs (403).</summary>
    public const int Unauthorized = 4;
    /// <summary>`hc train --stop-after-step N` checkpointed and stopped after step N as asked: the same command resumes it.</summary>
    public const int StoppedAsAsked = 5;
    /// <summary>An internal error of hc itself (a bug: the message names it; HC_DEBUG=1 prints the stack trace).</summary>
    public const int Internal = 70;
    /// <summary>Interrupted by Ctrl+C or SIGTERM while waiting or working (128 + SIGINT).</summary>
    public const int Interrupted = 130;

    /// <summary>The table `hc --help` prints (README.md, "Exit codes", says the same).</summary>
    public const string Help = """
        Exit codes:
          0    success (for submit --wait and watch: the run succeeded)
          1    the run failed or was cancelled
          2    bad input: an invalid spec, option or value; a run, group, key or file that does not exist
          3    the service could not be reached, timed out, or answered with a server error
          4    unauthorised: no key, an unknown or revoked key, or a key without the scope needed
          5    hc train --stop-after-step: checkpointed and stopped as asked (run it again to resume)
          70   an internal error of hc (HC_DEBUG=1 prints the stack trace)
          130  interrupted by Ctrl+C or SIGTERM
        """;

    /// <summary>The exit code for an HTTP error answer of the service.</summary>
    public static int ForStatus(System.Net.HttpStatusCode status) => (int)status switch
    {
        401 or 403 => Unauthorized,
        >= 500 => Unreachable,
        _ => BadInput,
    };
}
