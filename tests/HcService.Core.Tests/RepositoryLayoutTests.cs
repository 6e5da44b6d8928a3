using System.Xml.Linq;

namespace HcService.Core.Tests;

/// <summary>The repository's structural rules, checked on the source tree itself.</summary>
public class RepositoryLayoutTests
{
    /// <summary>Every project the API builds on, the API included, by following ProjectReference items.</summary>
    static List<string> ProjectClosure(string project)
    {
        var seen = new List<string>();
        var pending = new Stack<string>([Path.GetFullPath(project)]);
        while (pending.TryPop(out var path))
        {
            if (seen.Contains(path)) continue;
            seen.Add(path);
            foreach (var reference in XDocument.Load(path).Descendants("ProjectReference"))
                pending.Push(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!,
                    reference.Attribute("Include")!.Value.Replace('\\', Path.DirectorySeparatorChar))));
        }
        return seen;
    }

    [Fact]
    public void TheApiBuildsOnNoProjectThatReferencesTorchSharp()
    {
        var closure = ProjectClosure(Path.Combine(RepoPaths.Root, "src", "HcService.Api", "HcService.Api.csproj"));
        Assert.Contains(closure, p => p.EndsWith("HcService.Contract.csproj", StringComparison.Ordinal));
        foreach (var project in closure)
        {
            var torch = XDocument.Load(project).Descendants("PackageReference")
                .Select(r => r.Attribute("Include")?.Value ?? "")
                .Where(name => name.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase)).ToList();
            Assert.True(torch.Count == 0,
                $"{Path.GetRelativePath(RepoPaths.Root, project)} references {string.Join(", ", torch)}, so the API's publish output would carry libtorch");
        }
    }

    static IEnumerable<(string File, int Line, string Text)> SourceLines(Func<string, bool> skip)
    {
        var src = Path.Combine(RepoPaths.Root, "src");
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(RepoPaths.Root, file).Replace('\\', '/');
            if (relative.Contains("/obj/", StringComparison.Ordinal) || relative.Contains("/bin/", StringComparison.Ordinal) || skip(relative)) continue;
            var lines = File.ReadAllLines(file);
            for (var i = 0; i < lines.Length; i++) yield return (relative, i + 1, lines[i]);
        }
    }

    static bool Migration(string path) => path.Contains("/Migrations/", StringComparison.Ordinal);

    [Fact]
    public void OnlyTheRunLifecycleWritesTheRunStore()
    {
        // The run lifecycle (statuses, attempts, guarded writes, evaluation jobs) lives in src/HcService.Store/Runs;
        // everything else reads, or goes through it (EF inserts of new rows by the API are the one other way in).
        // Whitespace includes line breaks: a statement split over lines ("INSERT INTO\n hc.runs") is found too.
        var writes = new System.Text.RegularExpressions.Regex(@"\b(UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+hc\.", System.Text.RegularExpressions.RegexOptions.IgnoreCase);
        var offenders = new List<string>();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, "src"), "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(RepoPaths.Root, file).Replace('\\', '/');
            if (relative.Contains("/obj/", StringComparison.Ordinal) || relative.Contains("/bin/", StringComparison.Ordinal) || Migration(relative)
                || relative.StartsWith("src/HcService.Store/Runs/", StringComparison.Ordinal)) continue;
            var text = File.ReadAllText(file);
            foreach (System.Text.RegularExpressions.Match m in writes.Matches(text))
                offenders.Add($"{relative}:{text[..m.Index].Count(c => c == '\n') + 1}: {m.Value.ReplaceLineEndings(" ")}");
        }
        Assert.True(offenders.Count == 0, "SQL writes to the run store outside src/HcService.Store/Runs:\n" + string.Join("\n", offenders));
    }

    [Fact]
    public void StatusesAreWrittenOnlyThroughTheirConstants()
    {
        // A status as a literal in SQL ('running') or in C# ("running") outside RunStates.cs: a renamed or added status
        // would miss it. (The training core has no run statuses: its RunOutcome says how a training loop ended.)
        var literal = new System.Text.RegularExpressions.Regex("""['"](queued|running|cancelling|succeeded|failed|cancelled|stopped|lost)['"]""");
        var offenders = SourceLines(p => Migration(p) || p == "src/HcService.Store/Runs/RunStates.cs" || p.StartsWith("src/HcService.Core/", StringComparison.Ordinal))
            .Where(l => literal.IsMatch(l.Text) && !l.Text.TrimStart().StartsWith("//", StringComparison.Ordinal)
                        && !l.Text.Contains("Console.WriteLine(\"stopped\")", StringComparison.Ordinal))
            .Select(l => $"{l.File}:{l.Line}: {l.Text.Trim()}").ToList();
        Assert.True(offenders.Count == 0, "status literals outside RunStates.cs:\n" + string.Join("\n", offenders));
    }

    /// <summary>Text a user or a contributor reads: source (comments, help texts, error messages), scripts, docs.</summary>
    static IEnumerable<string> ReadableFiles()
    {
        string[] roots = ["src", "tests", "scripts", "docs", "deploy", "examples"];
        string[] extensions = [".cs", ".md", ".sh", ".yml", ".yaml", ".json", ".csproj", ".props"];
        foreach (var root in roots.Select(r => Path.Combine(RepoPaths.Root, r)).Where(Directory.Exists))
            foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
            {
                var relative = Path.GetRelativePath(RepoPaths.Root, file).Replace('\\', '/');
                if (relative.Contains("/obj/", StringComparison.Ordinal) || relative.Contains("/bin/", StringComparison.Ordinal) || Migration(relative)) continue;
                if (extensions.Contains(Path.GetExtension(file))) yield return relative;
            }
        foreach (var top in new[] { "README.md", "BENCHMARKS.md", "Dockerfile", "docker-compose.yml", "hc", ".ci/run" })
            if (File.Exists(Path.Combine(RepoPaths.Root, top))) yield return top;
    }

    static readonly System.Text.RegularExpressions.Regex RepoPath =
        new(@"(?<![\w/.-])((?:docs|src|tests|scripts|deploy|data|examples)/[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.[A-Za-z]{1,8})\b");
    static readonly System.Text.RegularExpressions.Regex DocSection =
        new(@"(docs/[a-z-]+\.md),? sections? (\d+(?:\.\d+)?)(?:(?:,| and) (\d+(?:\.\d+)?))?");

    [Fact]
    public void EveryRepositoryFileThatTheTextNamesExists()
    {
        var missing = new List<string>();
        foreach (var file in ReadableFiles())
        {
            var lines = File.ReadAllLines(Path.Combine(RepoPaths.Root, file));
            for (var i = 0; i < lines.Length; i++)
            {
                var line = lines[i];
                // Documents that live outside the repository (users have only the repository).
                foreach (var outside in new[] { "DESIGN.md", "HC-SPEC", "../shared", "/work/shared", "STYLE.md" })
                    if (line.Contains(outside, StringComparison.Ordinal) && file != "tests/HcService.Core.Tests/RepositoryLayoutTests.cs")
                        missing.Add($"{file}:{i + 1}: names {outside}, which is not in the repository");
                foreach (System.Text.RegularExpressions.Match m in RepoPath.Matches(line))
                {
                    var named = m.Groups[1].Value.TrimEnd('.');
                    var full = Path.Combine(RepoPaths.Root, named);
                    if (!File.Exists(full) && !Directory.Exists(full)) missing.Add($"{file}:{i + 1}: names {named}, which does not exist");
                }
                foreach (System.Text.RegularExpressions.Match m in DocSection.Matches(line))
                {
                    var doc = Path.Combine(RepoPaths.Root, m.Groups[1].Value);
                    if (!File.Exists(doc)) continue;   // reported above
                    var headings = File.ReadAllLines(doc).Where(h => h.StartsWith('#')).ToList();
                    foreach (var number in new[] { m.Groups[2].Value, m.Groups[3].Value }.Where(n => n.Length > 0))
                        if (!headings.Any(h => h.TrimStart('#').TrimStart().StartsWith(number.Contains('.') ? number + " " : number + ". ", StringComparison.Ordinal)))
                            missing.Add($"{file}:{i + 1}: names {m.Groups[1].Value} section {number}, which has no such heading");
                }
            }
        }
        Assert.True(missing.Count == 0, string.Join("\n", missing.Distinct()));
    }
    [Fact]
    public void TheReadmesProjectMapNamesEveryProjectAndCliFolder()
    {
        // README.md's "What is here" table is where a newcomer starts: every project under src/ has its row, and the
        // CLI's row names each of its feature folders. (That every path it names exists is checked above.)
        var readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));
        var start = readme.IndexOf("## What is here", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no '## What is here' section");
        var end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        var map = readme[start..(end < 0 ? readme.Length : end)];
        var missing = new List<string>();
        foreach (var project in Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, "src"), "*.csproj", SearchOption.AllDirectories))
        {
            var folder = Path.GetRelativePath(RepoPaths.Root, Path.GetDirectoryName(project)!).Replace('\\', '/');
            if (!map.Contains($"| `{folder}` |", StringComparison.Ordinal)) missing.Add($"{folder} (no row)");
        }
        var cliRow = map.Split('\n').FirstOrDefault(l => l.StartsWith("| `src/HcService.Cli` |", StringComparison.Ordinal)) ?? "";
        foreach (var dir in Directory.EnumerateDirectories(Path.Combine(RepoPaths.Root, "src", "HcService.Cli")))
        {
            var name = Path.GetFileName(dir);
            if (name is "bin" or "obj" || !Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories).Any()) continue;
            if (!cliRow.Contains($"`{name}/`", StringComparison.Ordinal)) missing.Add($"src/HcService.Cli/{name}/ (not in the CLI's row)");
        }
        Assert.True(missing.Count == 0, "README.md's project map lacks: " + string.Join(", ", missing));
    }
}
