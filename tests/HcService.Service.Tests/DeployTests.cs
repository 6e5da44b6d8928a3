using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace HcService.Service.Tests;

/// <summary>
/// The deployment files, checked without a Docker engine: the compose file through docker-compose's own validation,
/// the Prometheus config through promtool, the collector config and the dashboards parsed and cross-checked against the
/// metric contract in docs/telemetry.md. The tools come from scripts/setup.sh, so a missing tool fails the test.
/// </summary>
public class DeployTests
{
    static string Root => RepoPaths.Root;
    static string DashboardsDir => Path.Combine(Root, "deploy", "grafana", "dashboards");
    static string TelemetryDoc => Path.Combine(Root, "docs", "telemetry.md");

    [Fact]
    public void ComposeFileIsValidAndDefinesTheStack()
    {
        var config = Tool.Run("docker-compose", "-f", "docker-compose.yml", "config", "-q");
        Assert.True(config.ExitCode == 0, $"docker-compose config failed:\n{config.Output}");
        var services = Tool.Run("docker-compose", "-f", "docker-compose.yml", "config", "--services");
        Assert.True(services.ExitCode == 0, services.Output);
        Assert.Equal(["api", "grafana", "otel-collector", "postgres", "prometheus", "worker"], Lines(services.Stdout).Order());
        var volumes = Tool.Run("docker-compose", "-f", "docker-compose.yml", "config", "--volumes");
        Assert.Equal(["checkpoints", "datasets", "grafana", "pgdata", "prometheus"], Lines(volumes.Stdout).Order());

        // Compose v2 (`docker compose`) where it is installed: it validates the compose specification more strictly.
        if (Tool.TryRun("docker", "compose", "version") is { ExitCode: 0 })
        {
            var v2 = Tool.Run("docker", "compose", "-f", "docker-compose.yml", "config", "-q");
            Assert.True(v2.ExitCode == 0, $"docker compose config failed:\n{v2.Output}");
        }

        // The worker scales with --scale: no fixed name, no host port, one GPU each, the shared checkpoint volume.
        var compose = Yaml.Load(Path.Combine(Root, "docker-compose.yml"));
        var worker = compose.GetProperty("services").GetProperty("worker");
        Assert.False(worker.TryGetProperty("container_name", out _), "worker has a container_name: --scale cannot start two");
        Assert.False(worker.TryGetProperty("ports", out _), "worker publishes a host port: --scale would collide");
        var gpu = worker.GetProperty("deploy").GetProperty("resources").GetProperty("reservations").GetProperty("devices")[0];
        Assert.Equal("nvidia", gpu.GetProperty("driver").GetString());
        Assert.Equal(1, gpu.GetProperty("count").GetInt32());
        Assert.Equal(["gpu"], gpu.GetProperty("capabilities").EnumerateArray().Select(c => c.GetString()));
        // The API and the workers share the checkpoint store and the data root (uploaded datasets are trained on by workers).
        foreach (var name in new[] { "api", "worker" })
        {
            var mounts = compose.GetProperty("services").GetProperty(name).GetProperty("volumes").EnumerateArray().Select(v => v.GetString()).ToList();
            Assert.Contains("checkpoints:/var/lib/hc/checkpoints", mounts);
            Assert.Contains("datasets:/app/data/datasets", mounts);
        }

        // Restarts: every long-lived service comes back by itself, and healthy PostgreSQL / API gate what depends on them.
        foreach (var service in compose.GetProperty("services").EnumerateObject())
            Assert.Equal("unless-stopped", service.Value.GetProperty("restart").GetString());
        Assert.Equal("service_healthy", worker.GetProperty("depends_on").GetProperty("api").GetProperty("condition").GetString());
        // A stop keeps the work: Docker waits longer than the child's checkpoint-and-hand-back timeout before it kills.
        var stopTimeout = int.Parse(worker.GetProperty("environment").GetProperty("HC_STOP_TIMEOUT_SECONDS").GetString()!);
        var grace = worker.GetProperty("stop_grace_period").GetString()!;
        Assert.EndsWith("s", grace);
        Assert.True(int.Parse(grace[..^1]) >= stopTimeout + 20, $"worker stop_grace_period {grace} leaves under 20 s beyond HC_STOP_TIMEOUT_SECONDS={stopTimeout}");
    }

    [Fact]
    public void PrometheusConfigPassesPromtool()
    {
        var r = Tool.Run("promtool", "check", "config", "deploy/prometheus.yml");
        Assert.True(r.ExitCode == 0, $"promtool check config failed:\n{r.Output}");
        Assert.Contains("SUCCESS", r.Output);
    }

    [Fact]
    public void CollectorPipelinesReferenceDefinedComponents()
    {
        var config = Yaml.Load(Path.Combine(Root, "deploy", "otel-collector.yaml"));
        var pipelines = config.GetProperty("service").GetProperty("pipelines");
        Assert.Equal(["logs", "metrics", "traces"], pipelines.EnumerateObject().Select(p => p.Name).Order());
        foreach (var pipeline in pipelines.EnumerateObject())
            foreach (var kind in new[] { "receivers", "processors", "exporters" })
            {
                var used = pipeline.Value.TryGetProperty(kind, out var list) ? list.EnumerateArray().Select(e => e.GetString()!).ToList() : [];
                if (kind != "processors") Assert.True(used.Count > 0, $"pipeline {pipeline.Name} has no {kind}");
                foreach (var name in used)
                    Assert.True(config.GetProperty(kind).TryGetProperty(name, out _), $"pipeline {pipeline.Name} uses {kind}.{name}, which is not defined");
            }
        foreach (var name in config.GetProperty("service").GetProperty("extensions").EnumerateArray())
            Assert.True(config.GetProperty("extensions").TryGetProperty(name.GetString()!, out _), $"extension {name} is not defined");

        // Metrics leave through the prometheus exporter, on the port Prometheus scrapes.
        Assert.Contains("prometheus", pipelines.GetProperty("metrics").GetProperty("exporters").EnumerateArray().Select(e => e.GetString()));
        var endpoint = config.GetProperty("exporters").GetProperty("prometheus").GetProperty("endpoint").GetString()!;
        var prometheus = File.ReadAllText(Path.Combine(Root, "deploy", "prometheus.yml"));
        Assert.Contains($"otel-collector:{endpoint.Split(':')[^1]}", prometheus);
    }

    [Fact]
    public void DashboardsParseWithUniqueIdsAndTheProvisionedDataSource()
    {
        var provisioned = Yaml.Load(Path.Combine(Root, "deploy", "grafana", "provisioning", "datasources", "prometheus.yaml"));
        var uid = provisioned.GetProperty("datasources")[0].GetProperty("uid").GetString();
        Assert.False(string.IsNullOrEmpty(uid));

        var files = Directory.GetFiles(DashboardsDir, "*.json").Order().ToList();
        Assert.Equal(["hc-comparison.json", "hc-service.json", "hc-training.json"], files.Select(Path.GetFileName));
        var uids = new List<string>();
        var titles = new List<string>();
        foreach (var file in files)
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            var d = doc.RootElement;
            uids.Add(d.GetProperty("uid").GetString()!);
            titles.Add(d.GetProperty("title").GetString()!);
            Assert.InRange(d.GetProperty("schemaVersion").GetInt32(), 36, 41);
            var panels = DashboardQueries.Panels(d).ToList();
            Assert.NotEmpty(panels);
            Assert.Equal(panels.Count, panels.Select(p => p.GetProperty("id").GetInt32()).Distinct().Count());
            foreach (var panel in panels)
            {
                var title = $"{Path.GetFileName(file)} panel '{panel.GetProperty("title").GetString()}'";
                if (panel.GetProperty("type").GetString() == "row") { Assert.False(panel.TryGetProperty("targets", out _), title); continue; }
                Assert.True(panel.TryGetProperty("description", out var desc) && desc.GetString()!.Length > 20, $"{title} has no description");
                Assert.Equal(uid, panel.GetProperty("datasource").GetProperty("uid").GetString());
                var targets = panel.GetProperty("targets").EnumerateArray().ToList();
                Assert.NotEmpty(targets);
                foreach (var t in targets) Assert.Equal(uid, t.GetProperty("datasource").GetProperty("uid").GetString());
            }
            foreach (var v in d.GetProperty("templating").GetProperty("list").EnumerateArray())
                Assert.Equal(uid, v.GetProperty("datasource").GetProperty("uid").GetString());
        }
        Assert.Equal(uids.Count, uids.Distinct().Count());
        Assert.Equal(titles.Count, titles.Distinct().Count());
    }

    [Fact]
    public void DashboardQueriesNameOnlyDocumentedMetricsAndUseEveryOne()
    {
        var documented = DashboardQueries.DocumentedMetrics(TelemetryDoc);
        Assert.True(documented.Count >= 24, $"only {documented.Count} metrics found in docs/telemetry.md");
        Assert.Empty(DashboardQueries.Undocumented(DashboardsDir, documented));

        var used = DashboardQueries.MetricNames(DashboardsDir).Select(n => DashboardQueries.BaseName(n, documented)).ToHashSet();
        Assert.Empty(documented.Keys.Where(m => !used.Contains(m)).Order());
    }

    [Fact]
    public void AMisspeltMetricInADashboardIsCaught()
    {
        // The same check on a copy of the dashboards with one metric misspelt, and one histogram suffix on a gauge.
        var documented = DashboardQueries.DocumentedMetrics(TelemetryDoc);
        var dir = RepoPaths.TempDir("dashboards");
        foreach (var file in Directory.GetFiles(DashboardsDir, "*.json"))
            File.WriteAllText(Path.Combine(dir, Path.GetFileName(file)), File.ReadAllText(file)
                .Replace("hc_train_grad_norm{", "hc_train_grad_nrom{").Replace("max(hc_workers_alive)", "max(hc_workers_alive_bucket)"));
        Assert.Equal(["hc_train_grad_nrom", "hc_workers_alive_bucket"], DashboardQueries.Undocumented(dir, documented).Select(u => u.Metric).Distinct().Order());
    }

    [Theory]
    [InlineData("hc_train_loss", "hc_train_loss")]
    [InlineData("max by (run_id, run_name) (hc_train_loss{run_id=~\"$run_id\", connection!=\"residual\"})", "hc_train_loss")]
    [InlineData("histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket[$__rate_interval])))", "http_server_request_duration_seconds_bucket")]
    [InlineData("max(hc_train_tokens{run_id=\"$candidate\"}) / max(hc_train_tokens{run_id=\"$baseline\"}) > bool 1e-3", "hc_train_tokens")]
    [InlineData("a_metric offset 5m and on (job) group_left (instance) b_metric[1h:5m] unless ignoring(x) c", "a_metric b_metric c")]
    [InlineData("label_replace(up, \"dst\", \"$1\", \"src\", \"(hc_.*)\") or {__name__=\"hc_runs\", state=\"queued\"}", "hc_runs up")]
    [InlineData("sum without (worker) (rate(hc_worker_heartbeats_total[${__range}] @ end())) # hc_not_a_metric", "hc_worker_heartbeats_total")]
    [InlineData("topk(5, -hc_train_mfu * 100)", "hc_train_mfu")]
    public void ExtractorFindsExactlyTheMetricNames(string promql, string expected)
    {
        Assert.Equal(expected.Split(' ').Order(), DashboardQueries.MetricNamesOf(promql).Order());
    }

    [Theory]
    [InlineData("label_values(hc_train_loss{preset=~\"$preset\"}, run_id)", "hc_train_loss")]
    [InlineData("label_values(run_id)", "")]
    [InlineData("query_result(max by (run_id) (hc_train_loss))", "hc_train_loss")]
    public void VariableQueriesYieldTheirSelectorsMetrics(string query, string expected)
    {
        var names = DashboardQueries.MetricNamesOf(DashboardQueries.VariableQueryExpression(query));
        Assert.Equal(expected.Split(' ', StringSplitOptions.RemoveEmptyEntries).Order(), names.Order());
    }

    static IEnumerable<string> Lines(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>
/// The PromQL of the provisioned Grafana dashboards and the metric names it selects. Public so that a test against a
/// live service can compare <see cref="MetricNames"/> with what /metrics really serves.
/// </summary>
public static class DashboardQueries
{
    public sealed record Query(string Dashboard, string Where, string Expression);

    public sealed record Unknown(string Dashboard, string Where, string Metric, string Expression);

    /// <summary>Every metric name (as written, e.g. with _bucket) in every query of every dashboard in the folder.</summary>
    public static IReadOnlySet<string> MetricNames(string dashboardsDir) =>
        Queries(dashboardsDir).SelectMany(q => MetricNamesOf(q.Expression)).ToHashSet();

    /// <summary>Panel target expressions and template variable queries of every *.json dashboard in the folder.</summary>
    public static IEnumerable<Query> Queries(string dashboardsDir)
    {
        foreach (var file in Directory.GetFiles(dashboardsDir, "*.json").Order())
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            var name = Path.GetFileName(file);
            var queries = new List<Query>();
            foreach (var panel in Panels(doc.RootElement))
                if (panel.TryGetProperty("targets", out var targets))
                    foreach (var t in targets.EnumerateArray())
                        if (t.TryGetProperty("expr", out var expr))
                            queries.Add(new(name, $"panel '{panel.GetProperty("title").GetString()}' {t.GetProperty("refId").GetString()}", expr.GetString()!));
            if (doc.RootElement.TryGetProperty("templating", out var templating))
                foreach (var v in templating.GetProperty("list").EnumerateArray())
                {
                    if (v.GetProperty("type").GetString() != "query") continue;
                    var q = v.GetProperty("query");
                    var text = q.ValueKind == JsonValueKind.String ? q.GetString()! : q.GetProperty("query").GetString()!;
                    queries.Add(new(name, $"variable {v.GetProperty("name").GetString()}", VariableQueryExpression(text)));
                }
            foreach (var q in queries) yield return q;
        }
    }

    /// <summary>All panels, including those nested in (collapsed) rows.</summary>
    public static IEnumerable<JsonElement> Panels(JsonElement dashboard)
    {
        foreach (var p in dashboard.GetProperty("panels").EnumerateArray())
        {
            yield return p;
            if (p.TryGetProperty("panels", out var nested))
                foreach (var n in nested.EnumerateArray()) yield return n;
        }
    }

    /// <summary>The PromQL inside a Grafana Prometheus variable query: label_values(selector, label) -> selector;
    /// label_values(label) and metrics(regex) -> nothing; query_result(expr) -> expr.</summary>
    public static string VariableQueryExpression(string query)
    {
        var q = query.Trim();
        var labelValues = Regex.Match(q, @"^label_values\((?<selector>.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$", RegexOptions.Singleline);
        if (labelValues.Success) return labelValues.Groups["selector"].Value;
        if (q.StartsWith("label_values(", StringComparison.Ordinal) || q.StartsWith("metrics(", StringComparison.Ordinal) || q.StartsWith("label_names(", StringComparison.Ordinal)) return "";
        var result = Regex.Match(q, @"^query_result\((?<expr>.*)\)$", RegexOptions.Singleline);
        return result.Success ? result.Groups["expr"].Value : q;
    }

    static readonly HashSet<string> Keywords = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
    static readonly HashSet<string> LabelListKeywords = ["by", "without", "on", "ignoring", "group_left", "group_right"];

    /// <summary>
    /// Metric names in a PromQL expression: identifiers used as vector selectors (bare, or followed by `{` or `[`), and
    /// `__name__="..."` matchers. Not names: functions and aggregations (an identifier followed by `(`), keywords,
    /// the label lists of by/without/on/ignoring/group_left/group_right (and the aggregation they follow), label names and values inside `{}`, durations
    /// and subqueries inside `[]`, numbers, strings, Grafana variables ($x, ${x}) and comments.
    /// </summary>
    public static IReadOnlySet<string> MetricNamesOf(string promql)
    {
        var names = new HashSet<string>();
        var s = promql;
        var i = 0;
        while (i < s.Length)
        {
            var c = s[i];
            if (c is '"' or '\'' or '`') i = SkipString(s, i);
            else if (c == '#') { while (i < s.Length && s[i] != '\n') i++; }
            else if (c == '{')
            {
                var end = SkipGroup(s, i, '{', '}');
                var name = Regex.Match(s[i..end], @"__name__\s*=\s*[""'`](?<n>[A-Za-z_:][A-Za-z0-9_:]*)[""'`]");
                if (name.Success) names.Add(name.Groups["n"].Value);
                i = end;
            }
            else if (c == '[') i = SkipGroup(s, i, '[', ']');
            else if (c == '$') i = SkipVariable(s, i);
            else if (char.IsAsciiDigit(c) || (c == '.' && i + 1 < s.Length && char.IsAsciiDigit(s[i + 1])))
            {
                while (i < s.Length && (char.IsAsciiLetterOrDigit(s[i]) || s[i] is '.' or '_')) i++;
            }
            else if (char.IsAsciiLetter(c) || c is '_' or ':')
            {
                var start = i;
                while (i < s.Length && (char.IsAsciiLetterOrDigit(s[i]) || s[i] is '_' or ':')) i++;
                var ident = s[start..i];
                var next = i;
                while (next < s.Length && char.IsWhiteSpace(s[next])) next++;
                // An aggregation's modifier may stand between its name and its parenthesis: `sum by (x) (...)`.
                var followedByParen = next < s.Length && (s[next] == '(' || Regex.IsMatch(s[next..], @"^(by|without)\s*\(", RegexOptions.IgnoreCase));
                if (LabelListKeywords.Contains(ident.ToLowerInvariant())) { if (followedByParen) i = SkipGroup(s, next, '(', ')'); }
                else if (Keywords.Contains(ident.ToLowerInvariant())) { }
                else if (!followedByParen) names.Add(ident);
            }
            else i++;
        }
        return names;
    }

    static int SkipString(string s, int i)
    {
        var quote = s[i++];
        while (i < s.Length && s[i] != quote) i += s[i] == '\\' && quote != '`' ? 2 : 1;
        return Math.Min(i + 1, s.Length);
    }

    /// <summary>The index after the bracket that closes the one at i, skipping strings.</summary>
    static int SkipGroup(string s, int i, char open, char close)
    {
        var depth = 0;
        while (i < s.Length)
        {
            if (s[i] is '"' or '\'' or '`') { i = SkipString(s, i); continue; }
            if (s[i] == open) depth++;
            else if (s[i] == close && --depth == 0) return i + 1;
            i++;
        }
        return i;
    }

    static int SkipVariable(string s, int i)
    {
        i++;
        if (i < s.Length && s[i] == '{') return SkipGroup(s, i, '{', '}');
        while (i < s.Length && (char.IsAsciiLetterOrDigit(s[i]) || s[i] == '_')) i++;
        return i;
    }

    /// <summary>Metric name -> type (gauge, counter, histogram) from the tables of docs/telemetry.md: rows whose first
    /// cell is a backticked metric name and whose second cell is its type.</summary>
    public static IReadOnlyDictionary<string, string> DocumentedMetrics(string telemetryMd)
    {
        var metrics = new Dictionary<string, string>();
        foreach (var line in File.ReadLines(telemetryMd))
        {
            var row = Regex.Match(line, @"^\|\s*`(?<name>[a-z_:][a-z0-9_:]*)`\s*\|\s*(?<type>gauge|counter|histogram)\s*\|");
            if (row.Success) Assert.True(metrics.TryAdd(row.Groups["name"].Value, row.Groups["type"].Value), $"{row.Groups["name"].Value} documented twice");
        }
        return metrics;
    }

    /// <summary>The documented metric a scraped name belongs to: itself, or a histogram's _bucket/_count/_sum series.</summary>
    public static string BaseName(string name, IReadOnlyDictionary<string, string> documented)
    {
        if (documented.ContainsKey(name)) return name;
        foreach (var suffix in new[] { "_bucket", "_count", "_sum" })
            if (name.EndsWith(suffix, StringComparison.Ordinal) && documented.TryGetValue(name[..^suffix.Length], out var type) && type == "histogram")
                return name[..^suffix.Length];
        return name;
    }

    /// <summary>Every metric a dashboard query names that docs/telemetry.md does not document.</summary>
    public static IReadOnlyList<Unknown> Undocumented(string dashboardsDir, IReadOnlyDictionary<string, string> documented) =>
        Queries(dashboardsDir).SelectMany(q => MetricNamesOf(q.Expression)
                .Where(m => !documented.ContainsKey(BaseName(m, documented)))
                .Select(m => new Unknown(q.Dashboard, q.Where, m, q.Expression)))
            .ToList();
}

/// <summary>The command-line tools the checks use. A missing tool is a failure: scripts/setup.sh installs them.</summary>
static class Tool
{
    public static HcProcess.Result Run(string file, params string[] args) =>
        TryRun(file, args) ?? throw new Xunit.Sdk.XunitException($"{file} not found on PATH: run scripts/setup.sh (it installs docker-compose and prometheus)");

    public static HcProcess.Result? TryRun(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = RepoPaths.Root };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (Win32Exception) { return null; }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromMinutes(2))) { p.Kill(entireProcessTree: true); throw new Xunit.Sdk.XunitException($"{file} {string.Join(' ', args)} timed out"); }
            return new(p.ExitCode, stdout.Result, stderr.Result);
        }
    }
}

/// <summary>YAML files read with PyYAML (python3-yaml, which the docker-compose package depends on) and handed over as JSON.</summary>
static class Yaml
{
    public static JsonElement Load(string path)
    {
        var python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        var r = Tool.Run(python, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", path);
        Assert.True(r.ExitCode == 0, $"{path} is not valid YAML (or PyYAML is missing: run scripts/setup.sh):\n{r.Output}");
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.Clone();
    }
}
