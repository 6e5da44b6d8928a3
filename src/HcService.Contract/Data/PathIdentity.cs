using System.Runtime.InteropServices;

namespace HcService.Contract.Data;

/// <summary>
/// Paths by what they are, not by how they are written: a file reached through a symbolic link is where the link
/// points. A name checked against a root by its text ("data/x/../../etc", a symlinked folder) can leave the root;
/// checked by its real path it cannot.
/// </summary>
public static class PathIdentity
{
    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)]
    static extern IntPtr realpath(string path, IntPtr resolved);

    [DllImport("libc")]
    static extern void free(IntPtr p);

    /// <summary>The canonical absolute path (every symbolic link, "." and ".." resolved), or null when it does not exist.</summary>
    public static string? Real(string path)
    {
        if (path.Contains('\0')) return null;
        if (OperatingSystem.IsWindows()) return File.Exists(path) || Directory.Exists(path) ? Path.GetFullPath(path) : null;
        var p = realpath(Path.GetFullPath(path), IntPtr.Zero);
        if (p == IntPtr.Zero) return null;
        try { return Marshal.PtrToStringUTF8(p); }
        finally { free(p); }
    }

    /// <summary>The real path of <paramref name="path"/> when it exists and is <paramref name="root"/> itself or inside
    /// it (after resolving both); null otherwise.</summary>
    public static string? Inside(string root, string path)
    {
        if (Real(root) is not { } realRoot || Real(path) is not { } real) return null;
        var prefix = realRoot.EndsWith(Path.DirectorySeparatorChar) ? realRoot : realRoot + Path.DirectorySeparatorChar;
        return real == realRoot || real.StartsWith(prefix, StringComparison.Ordinal) ? real : null;
    }
}
