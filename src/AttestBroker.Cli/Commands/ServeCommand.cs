using System.CommandLine;
using System.Globalization;
using AttestBroker.Server;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker serve</c>: the broker over HTTPS. Settings come from appsettings.json (section "Broker"),
/// environment variables (<c>Broker__DataDirectory</c>, ...) and these options (which win).
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "Data directory: SQLite database, KEK, nonce secret, token-signing key and policies/<key-id>.yaml (created 0700 if missing)." };
        var listen = new Option<string?>("--listen") { Description = "Address to listen on (default 127.0.0.1)." };
        var port = new Option<int?>("--port") { Description = "Port (default 8443; 0 picks a free one)." };
        var cert = new Option<string?>("--cert") { Description = "TLS certificate, PEM." };
        var certKey = new Option<string?>("--cert-key") { Description = "TLS private key, PEM." };
        var devCert = new Option<bool>("--dev-cert") { Description = "Make a self-signed certificate for localhost (local use only)." };
        var insecure = new Option<bool>("--insecure-http") { Description = "Serve plain HTTP without TLS (logged as a warning)." };
        var issuer = new Option<string?>("--issuer") { Description = "Issuer (\"iss\") of attestation-result tokens." };
        var trustSim = new Option<string?>("--trust-simulator") { Description = "Trust the simulated roots of this attest-sim PKI folder (logged as a warning); policies must still set allowSimulated. Never for production." };
        var collateral = new Option<string[]>("--collateral") { Description = "Collateral files or folders (repeatable), as for attestbroker verify." };
        var fetch = new Option<bool>("--fetch-collateral") { Description = "Fetch missing collateral from Intel PCS / AMD KDS, cached in the data directory." };
        var skipCrl = new Option<bool>("--skip-crl") { Description = "Skip revocation checks; policies then deny unless they set allowUncheckedCrl." };
        var command = new Command("serve", "Run the attestation and key-release broker (HTTPS; see docs/protocol.md §7).")
        {
            dataDir, listen, port, cert, certKey, devCert, insecure, issuer, trustSim, collateral, fetch, skipCrl,
        };
        command.SetAction(async (parse, ct) =>
        {
            const string S = BrokerOptions.SectionName + ":";
            var settings = new Dictionary<string, string?>(StringComparer.Ordinal);
            void Put(string name, string? value)
            {
                if (value is not null)
                {
                    settings[S + name] = value;
                }
            }

            Put(nameof(BrokerOptions.DataDirectory), parse.GetValue(dataDir));
            Put(nameof(BrokerOptions.ListenAddress), parse.GetValue(listen));
            Put(nameof(BrokerOptions.Port), parse.GetValue(port)?.ToString(CultureInfo.InvariantCulture));
            Put(nameof(BrokerOptions.CertificateFile), parse.GetValue(cert));
            Put(nameof(BrokerOptions.CertificateKeyFile), parse.GetValue(certKey));
            Put(nameof(BrokerOptions.DevCertificate), parse.GetValue(devCert) ? "true" : null);
            Put(nameof(BrokerOptions.AllowInsecureHttp), parse.GetValue(insecure) ? "true" : null);
            Put(nameof(BrokerOptions.Issuer), parse.GetValue(issuer));
            Put(nameof(BrokerOptions.TrustSimulatorPkiDirectory), parse.GetValue(trustSim));
            Put(nameof(BrokerOptions.FetchCollateral), parse.GetValue(fetch) ? "true" : null);
            Put(nameof(BrokerOptions.SkipCrl), parse.GetValue(skipCrl) ? "true" : null);
            var paths = parse.GetValue(collateral) ?? [];
            for (var i = 0; i < paths.Length; i++)
            {
                Put(nameof(BrokerOptions.CollateralPaths) + ":" + i.ToString(CultureInfo.InvariantCulture), paths[i]);
            }

            BrokerHost host;
            try
            {
                host = await BrokerHost.CreateAsync([], settings, cancellationToken: ct).ConfigureAwait(false);
            }
            catch (BrokerStartupException ex)
            {
                throw new CliUsageException(ex.Message, ex);
            }

            await using (host.ConfigureAwait(false))
            {
                await host.RunAsync(ct).ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });
        return command;
    }
}
