namespace AttestBroker.Testing;

/// <summary>Locates the repository and the shared real-hardware vectors without copying them.</summary>
internal static class TestPaths
{
    /// <summary>The environment variable that overrides where the vectors are read from.</summary>
    public const string VectorsVariable = "ATTESTBROKER_VECTORS";

    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "AttestBroker.sln")))
            {
                dir = dir.Parent;
            }

            return dir?.FullName ?? throw new InvalidOperationException("AttestBroker.sln not found above " + AppContext.BaseDirectory);
        }
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

            var beside = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "attestation-vectors"));
            return Directory.Exists(beside) ? beside : null;
        }
    }
}
