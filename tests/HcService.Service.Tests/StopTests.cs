using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Npgsql;

namespace HcService.Service.Tests;

/// <summary>
/// Stops keep the work: SIGTERM to a worker (a rolling deploy, a scale-down, `docker compose stop`) or straight to a
/// training process checkpoints the step it has reached and hands the run back; the next attempt resumes from exactly
/// that step, so no step is trained twice or lost, and the series ends with every step once.
/// </summary>
[Collection("service")]
public class StopTests(ServiceFixture svc)
{
    const string Spec = """
        { "name": "NAME", "model": { "preset": "tiny" }, "architecture": "dense", "connection": { "type": "dynamic-hc", "rate": 2 },
          "training": { "tokenBudget": 204800, "evalTokens": "2K", "evalInterval": 102400, "checkpointInterval": 25600 } }
        """;

    [Theory]
    [InlineData("worker")]
    [InlineData("training process")]
    public async Task SigtermCheckpointsTheCurrentStepHandsTheRunBackAndTheNextAttemptResumesFromIt(string target)
    {
        svc.EnsureWorker();
        var id = await svc.SubmitOk(Spec.Replace("NAME", $"sigterm-{target.Replace(' ', '-')}"));
        var stream = SseReader.Read(svc.Http, $"api/runs/{id}/events?names=train/loss", timeout: TimeSpan.FromMinutes(6));
        await svc.WaitForStep(id, 30);   // between the checkpoints of steps 25 and 50
        var run = await svc.Run(id);
        var shown = run["run"]!["step"]!.GetValue<long>();
        var workerPid = int.Parse(run["lease"]!["owner"]!.GetValue<string>().Split(':')[1]);
        var worker = svc.LiveWorkers.Single(w => w.Id == workerPid);   // the fixture's own Process object: it has the exit code
        var child = (int)await RunClient.ChildPid(id);

        long reached;
        if (target == "worker")
        {
            HcLiveProcess.Kill(worker.Id, 15);
            await worker.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
            Assert.Equal(0, worker.ExitCode);
            // Nobody trains the run now: what is stored is what the stopped attempt reached.
            Assert.Equal("queued", (await svc.Run(id))["run"]!["status"]!.GetValue<string>());
            reached = (await svc.Series(id, "train/loss")).Max(p => p.Step);
            var checkpoints = (await svc.Http.GetFromJsonAsync<JsonArray>($"api/runs/{id}/checkpoints"))!;
            Assert.Equal(reached, checkpoints.Max(c => c!["step"]!.GetValue<long>()));
            svc.StartWorker();
        }
        else
        {
            HcLiveProcess.Kill(child, 15);
            reached = -1;
        }

        Assert.Equal("succeeded", (await svc.WaitFor(id, RunClient.Ended, TimeSpan.FromMinutes(4))).Status);
        if (target != "worker") Assert.False(worker.HasExited, "the worker went down with its training process");
        var attempts = (await svc.Run(id))["attempts"]!.AsArray();
        Assert.Equal(2, attempts.Count);
        Assert.Equal("stopped", attempts[0]!["outcome"]!.GetValue<string>());
        var stopped = Regex.Match(attempts[0]!["reason"]!.GetValue<string>(), @"^stop requested \(SIGTERM/SIGINT\) at step (\d+): checkpointed and handed back$");
        Assert.True(stopped.Success, attempts.ToJsonString());
        var step = long.Parse(stopped.Groups[1].Value);
        Assert.True(step >= shown, $"stopped at step {step}, before step {shown} that the run had shown when it was signalled");
        if (reached >= 0) Assert.Equal(reached, step);
        Assert.Contains($"[run {id}] resumed from ckpt-{step:D9}.hcckpt: step {step},", svc.WorkerLog);
        Assert.Equal("succeeded", attempts[1]!["outcome"]!.GetValue<string>());
        Assert.Equal(Enumerable.Range(1, 200).Select(s => (long)s), (await svc.Series(id, "train/loss")).Select(p => p.Step));

        // A client watching all along saw the hand-back as a transition with its reason, and every step exactly once.
        var events = await stream;
        SseReader.AssertIdsIncrease(events);
        var statuses = events.Where(e => e.Kind == "status").ToList();
        Assert.Equal(["queued", "running", "queued", "running", "succeeded"], statuses.Select(e => e.Status));
        Assert.Equal([0, 1, 1, 2, 2], statuses.Select(e => e.Data["attempt"]!.GetValue<int>()));
        Assert.Equal(attempts[0]!["reason"]!.GetValue<string>(), statuses[2].Data["reason"]!.GetValue<string>());
        Assert.Equal(Enumerable.Range(1, 200).Select(s => (long)s), events.Where(e => e.Kind == "metric").Select(e => e.Point.Step));
    }
}
