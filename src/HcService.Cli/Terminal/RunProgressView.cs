using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace HcService.Cli.Terminal;

/// <summary>
/// A run's progress for a person, used by `hc train`, `hc submit --wait` and `hc watch`: on a terminal, a live bar
/// (Spectre.Console) with the percentage, step, tokens, smoothed tokens/s, ETA and the latest losses, with messages
/// (status changes, validation, checkpoints) printed above it; when stdout is not a terminal (a CI log, a pipe), plain
/// lines instead, one every <c>plainEvery</c> steps. Update it from one thread at a time.
/// </summary>
public sealed class RunProgressView : IDisposable
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    readonly string title;
    readonly int plainEvery;
    readonly Throughput throughput = new(TimeSpan.FromSeconds(30));
    readonly Stopwatch clock = Stopwatch.StartNew();
    readonly Dictionary<string, double> validation = new(StringComparer.Ordinal);
    readonly IAnsiConsole? live;
    readonly ProgressTask? bar;
    readonly TaskCompletionSource? done;
    readonly Task? display;
    long totalSteps, tokenBudget, step, tokens, lastPlainStep = -1;
    double? loss;
    TimeSpan? fallbackEta;
    // What the refresh thread draws, computed on the updating thread (the throughput samples are not shared with it).
    volatile string details = "", etaText = "ETA -";

    /// <summary>Whether progress is drawn live: stdout is a terminal that Spectre.Console deems interactive (not a CI
    /// log), unless HC_PROGRESS=plain asks for lines.</summary>
    public static bool Live => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive && AnsiConsole.Profile.Capabilities.Ansi
                               && Environment.GetEnvironmentVariable("HC_PROGRESS") != "plain";

    public RunProgressView(string title, long totalSteps, long tokenBudget, int plainEvery = 10, bool? live = null)
    {
        (this.title, this.totalSteps, this.tokenBudget, this.plainEvery) = (title, Math.Max(1, totalSteps), tokenBudget, Math.Max(1, plainEvery));
        if (!(live ?? Live)) return;
        this.live = AnsiConsole.Console;
        var ready = new TaskCompletionSource<ProgressTask>(TaskCreationOptions.RunContinuationsAsynchronously);
        done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // One row: title, bar, percentage, ETA; below it, the details (step, tokens, tokens/s, losses), wrapped if narrow.
        var progress = this.live.Progress().AutoClear(false).HideCompleted(false).AutoRefresh(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = 30 }, new PercentageColumn(),
                new TextColumn(() => etaText))
            .UseRenderHook((grid, _) => new Rows(grid, new Text(details)));
        progress.RefreshRate = TimeSpan.FromMilliseconds(250);
        display = Task.Run(() => progress.StartAsync(async ctx =>
        {
            ready.SetResult(ctx.AddTask(Markup.Escape(title), maxValue: this.totalSteps));
            await done.Task;
        }));
        // A display that cannot start (another live display in the process, a terminal Spectre cannot drive) must fail
        // here, not leave this constructor waiting for a task that never comes.
        display.ContinueWith(t => ready.TrySetException(t.Exception!.InnerExceptions), TaskContinuationOptions.OnlyOnFaulted);
        bar = ready.Task.GetAwaiter().GetResult();
        Render();
    }

    /// <summary>The run's size changed (a status event says so) or became known.</summary>
    public void Totals(long totalSteps, long tokenBudget)
    {
        (this.totalSteps, this.tokenBudget) = (Math.Max(1, totalSteps), tokenBudget);
        if (bar is not null) bar.MaxValue = this.totalSteps;
        Render();
    }

    /// <summary>An estimate to show until the view has measured its own (the API's ETA when watching a running run).</summary>
    public void InitialEta(TimeSpan? eta) => fallbackEta = eta;

    /// <summary>Training reached <paramref name="step"/> with <paramref name="tokens"/> trained; <paramref name="extra"/>
    /// goes on the plain line only (lr, grad norm, MFU for `hc train`).</summary>
    public void Step(long step, long tokens, double? loss = null, string? extra = null)
    {
        (this.step, this.tokens) = (step, tokens);
        if (loss is not null) this.loss = loss;
        throughput.Add(clock.Elapsed.TotalSeconds, tokens);
        if (bar is not null) { bar.Value = Math.Min(step, totalSteps); Render(); return; }
        if (step == lastPlainStep) return;
        if (step % plainEvery == 0 || step >= totalSteps || lastPlainStep < 0 || step < lastPlainStep)
        {
            Console.WriteLine($"{Summary()}{(extra is null ? "" : " | " + extra)}");
            lastPlainStep = step;
        }
    }

    /// <summary>A validation loss arrived: printed as a line, and kept for the bar.</summary>
    public void Validation(string set, long atStep, double value, double? perplexity = null, long? evalTokens = null)
    {
        validation[set] = value;
        Line(string.Create(Ci, $"  validation {set}: loss {value:F4}{(perplexity is { } p ? $", ppl {p:F2}" : "")}{(evalTokens is { } n ? $" ({n:N0} tokens)" : "")} at step {atStep}"));
    }

    /// <summary>An image classifier's validation: loss per image and top-1 / top-5 accuracy over a test split.</summary>
    public void Accuracy(string set, long atStep, double loss, double top1, double top5, long images)
    {
        validation[set] = loss;
        Line(string.Create(Ci, $"  validation {set}: top-1 {100 * top1:F2}%, top-5 {100 * top5:F2}%, loss {loss:F4} ({images:N0} images) at step {atStep}"));
    }

    /// <summary>A message for the person (a status change, a phase, a checkpoint), above the bar on a terminal.</summary>
    public void Line(string text)
    {
        if (live is not null) { live.WriteLine(text); Render(); }
        else Console.WriteLine(text);
    }

    /// <summary>The ETA shown now: measured over the last 30 s once there is a rate, else the initial estimate.</summary>
    public TimeSpan? Eta => step >= totalSteps ? TimeSpan.Zero
        : throughput.Eta(tokenBudget > 0 ? tokenBudget - tokens : (long)((double)tokens / Math.Max(1, step) * (totalSteps - step))) ?? fallbackEta;

    /// <summary>The plain line: "tiny-dhc4: step 52/122 (42.6%) | 213k/500k tokens | 1.39k tok/s | ETA 3m26s | loss 2.4012".</summary>
    public string Summary() => string.Create(Ci, $"{title}: step {step}/{totalSteps} ({Human.Percent((double)step / totalSteps)}) | {Details()}");

    string Details()
    {
        var text = string.Create(Ci, $"{Human.Tokens(tokens)}/{Human.Tokens(tokenBudget)} tokens | {Human.Rate(throughput.TokensPerSecond)}");
        if (bar is null) text += $" | ETA {Human.Duration(Eta)}";
        if (loss is { } l) text += string.Create(Ci, $" | loss {l:F4}");
        if (bar is not null)   // plain output prints each validation on its own line
            foreach (var (set, v) in validation) text += string.Create(Ci, $" | val {set} {v:F4}");
        return text;
    }

    void Render()
    {
        if (bar is null) return;
        details = string.Create(Ci, $"step {step}/{totalSteps} | {Details()}");
        etaText = $"ETA {Human.Duration(Eta)}";
    }

    /// <summary>Ends the live display (the bar stays on the screen at its last state).</summary>
    public void Dispose()
    {
        if (done is null) return;
        Render();
        done.TrySetResult();
        try { display!.GetAwaiter().GetResult(); }
        catch (Exception e) when (e is InvalidOperationException or IOException) { /* the display failed; what it showed stays */ }
    }

    /// <summary>A column of plain text (no markup), read at every refresh.</summary>
    sealed class TextColumn(Func<string> text) : ProgressColumn
    {
        protected override bool NoWrap => true;
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) => new Text(text());
    }
}
