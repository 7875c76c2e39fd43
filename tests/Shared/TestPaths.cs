namespace AttestBroker.Testing;

/// <summary>Locates the repository and the shared real-hardware vectors without copying them.</summary>
internal static class TestPaths
{
    /// <summary>The environment variable that overrides where the vectors are read from.</summary>
    public const string VectorsVariable = "ATTESTBROKER_VECTORS";

    /// <summary>
    /// The checkout (the folder holding AttestBroker.sln) above the test binaries or the working directory, else the one
    /// the test assembly was built from (its "AttestBroker.RepoRoot" metadata, for build output outside the checkout:
    /// ATTESTBROKER_ARTIFACTS), or null.
    /// </summary>
    public static string? RepoRootOrNull => FindUp(AppContext.BaseDirectory) ?? FindUp(Directory.GetCurrentDirectory()) ?? BuiltFrom();

    public static string RepoRoot =>
        RepoRootOrNull ?? throw new InvalidOperationException("AttestBroker.sln not found above " + AppContext.BaseDirectory + " or the working directory");

    private static string? BuiltFrom()
    {
        var root = typeof(TestPaths).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "AttestBroker.RepoRoot")?.Value;
        return root is not null && File.Exists(Path.Combine(root, "AttestBroker.sln")) ? root : null;
    }

    private static string? FindUp(string start)
    {
        var dir = new DirectoryInfo(start);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "AttestBroker.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName;
    }

    /// <summary>The vectors folder (ATTESTBROKER_VECTORS, else ../shared/attestation-vectors beside the checkout), or null when absent.</summary>
    public static string? VectorsDir
    {
        get
        {
            var fromEnv = Environment.GetEnvironmentVariable(VectorsVariable);
            if (!string.IsNullOrEmpty(fromEnv))
            {
                return Directory.Exists(fromEnv) ? Path.GetFullPath(fromEnv) : null;
            }

            if (RepoRootOrNull is not { } root)
            {
                return null;
            }

            var beside = Path.GetFullPath(Path.Combine(root, "..", "shared", "attestation-vectors"));
            return Directory.Exists(beside) ? beside : null;
        }
    }
}
