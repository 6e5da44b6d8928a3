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
}
