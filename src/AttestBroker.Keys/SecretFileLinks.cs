namespace AttestBroker.Keys;

/// <summary>
/// Symbolic links in secret-file paths. Kubernetes mounts each file of a Secret volume as a link into a hidden
/// <c>..data</c> folder beside it (<c>nonce.key -&gt; ..data/nonce.key</c>, <c>..data -&gt; ..2026_11_29_...</c>) so
/// that it can swap a Secret's files at once. Such a link is followed; any other link is refused, so a link planted to
/// point a secret path at another file outside its folder is never read.
/// </summary>
public static class SecretFileLinks
{
    /// <summary>
    /// The path to read: <paramref name="path"/> itself when it is not a link; its final target when that lies inside
    /// the link's own folder and is not itself a link; null for any other link (the caller refuses it).
    /// </summary>
    public static string? ResolveContained(string path)
    {
        var full = Path.GetFullPath(path);
        var info = new FileInfo(full);
        if (info.LinkTarget is null)
        {
            return full;
        }

        var folder = RealPath(Path.GetDirectoryName(full) ?? full, 0);
        var resolved = RealPath(full, 0);
        if (folder is null || resolved is null || !resolved.StartsWith(folder + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            return null;
        }

        return File.Exists(resolved) ? resolved : null;
    }

    /// <summary>The path with every link in it resolved (like realpath(3)); null for a loop or more than 32 levels.</summary>
    private static string? RealPath(string full, int depth)
    {
        if (depth > 32)
        {
            return null;
        }

        var root = Path.GetPathRoot(full) ?? string.Empty;
        var current = root;
        foreach (var part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(current, part);
            if (new FileInfo(next).LinkTarget is { } link)
            {
                var resolved = RealPath(Path.GetFullPath(Path.IsPathRooted(link) ? link : Path.Combine(current, link)), depth + 1);
                if (resolved is null)
                {
                    return null;
                }

                next = resolved;
            }

            current = next;
        }

        return current;
    }
}
