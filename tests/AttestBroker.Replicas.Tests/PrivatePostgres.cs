using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace AttestBroker.Replicas.Tests;

/// <summary>
/// A throw-away PostgreSQL server of our own (initdb in a temporary directory, 127.0.0.1 on a free port, the
/// binaries of /usr/lib/postgresql/*/bin run as the postgres user when we are root), so a test can stop and start
/// it without disturbing the server other suites share.
/// </summary>
internal sealed class PrivatePostgres : IAsyncDisposable
{
    private readonly string _bin;
    private readonly string _dir;
    private readonly bool _asPostgresUser;

    private PrivatePostgres(string bin, string dir, int port, bool asPostgresUser)
    {
        _bin = bin;
        _dir = dir;
        Port = port;
        _asPostgresUser = asPostgresUser;
    }

    public int Port { get; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Pooling=true;Timeout=5;Command Timeout=30";

    /// <summary>The binaries, or null with the reason when there are none.</summary>
    public static string? FindBinaries(out string reason)
    {
        reason = string.Empty;
        if (!Directory.Exists("/usr/lib/postgresql"))
        {
            reason = "no PostgreSQL binaries under /usr/lib/postgresql (install the Debian package postgresql)";
            return null;
        }

        var bin = Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
            .Where(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")))
            .OrderBy(d => d, StringComparer.Ordinal).LastOrDefault();
        if (bin is null)
        {
            reason = "no initdb/pg_ctl under /usr/lib/postgresql/*/bin";
        }

        return bin;
    }

    public static async Task<PrivatePostgres> StartAsync()
    {
        var bin = FindBinaries(out var reason) ?? throw new InvalidOperationException(reason);
        var root = Environment.UserName == "root";
        var dir = Directory.CreateTempSubdirectory("ab-replicas-pg-").FullName;
        var port = FreePort();
        var pg = new PrivatePostgres(bin, dir, port, root);
        if (root)
        {
            await RunAsync("chown", ["postgres", dir]);
        }

        await pg.PgAsync("initdb", $"-D {dir}/data -A trust -U postgres --no-sync");
        await pg.StartServerAsync();
        return pg;
    }

    public Task StartServerAsync() =>
        PgAsync("pg_ctl", $"-D {_dir}/data -l {_dir}/server.log -o \"-c listen_addresses=127.0.0.1 -p {Port} -k {_dir} -c fsync=off\" -w start");

    /// <summary>Stops the server at once (immediate mode: like a crash; connections are cut).</summary>
    public Task StopServerAsync() => PgAsync("pg_ctl", $"-D {_dir}/data -m immediate -w stop");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await PgAsync("pg_ctl", $"-D {_dir}/data -m immediate -w stop");
        }
        catch (InvalidOperationException)
        {
            // Already stopped.
        }

        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private Task PgAsync(string tool, string arguments)
    {
        var exe = Path.Combine(_bin, tool);
        return _asPostgresUser
            ? RunAsync("su", ["postgres", "-s", "/bin/sh", "-c", $"{exe} {arguments}"])
            : RunAsync("/bin/sh", ["-c", $"{exe} {arguments}"]);
    }

    private static async Task RunAsync(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await p.WaitForExitAsync(cts.Token);
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {await stderr}{await stdout}");
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
