using System.CommandLine;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Policy;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker identity digest</c>: the init-data document that binds a Kubernetes namespace and service account
/// into launch data, its SHA-256, and the SEV-SNP HOST_DATA / TDX MRCONFIGID values to launch the TEE with
/// (docs/identity.md). A policy with <c>requester.bindToLaunchData: true</c> checks them.
/// </summary>
internal static class IdentityCommand
{
    public static Command Create()
    {
        var command = new Command("identity", "Kubernetes identity bound into measured launch data (docs/identity.md).");
        var ns = new Option<string>("--namespace") { Description = "The pod's Kubernetes namespace.", Required = true };
        var sa = new Option<string>("--service-account") { Description = "The pod's service account name.", Required = true };
        var tee = new Option<string?>("--tee") { Description = "Print only the value for this TEE: tdx (MRCONFIGID, 48 bytes) or sev-snp (HOST_DATA, 32 bytes), as hex." };
        var json = new Option<bool>("--json") { Description = "Print the document, digest and both launch values as one JSON object." };
        var digest = new Command("digest", "Print the init-data document for a namespace and service account, its SHA-256, and the HOST_DATA / MRCONFIGID values that bind it.") { ns, sa, tee, json };
        digest.SetAction(async (parse, ct) =>
        {
            var n = parse.GetRequiredValue(ns);
            var s = parse.GetRequiredValue(sa);
            byte[] document;
            try
            {
                document = IdentityBinding.Document(n, s);
            }
            catch (ArgumentException ex)
            {
                throw new CliUsageException((ex.ParamName == "namespace" ? "--namespace: " : "--service-account: ") + ex.Message.Split(" (Parameter", 2)[0], ex);
            }

            var hostData = Convert.ToHexStringLower(IdentityBinding.HostData(n, s));
            var mrConfigId = Convert.ToHexStringLower(IdentityBinding.MrConfigId(n, s));
            var output = parse.InvocationConfiguration.Output;
            switch (parse.GetValue(tee))
            {
                case null:
                    break;
                case "tdx":
                    await output.WriteLineAsync(mrConfigId).ConfigureAwait(false);
                    return ExitCodes.Success;
                case "sev-snp":
                    await output.WriteLineAsync(hostData).ConfigureAwait(false);
                    return ExitCodes.Success;
                default:
                    throw new CliUsageException("--tee must be tdx or sev-snp");
            }

            if (parse.GetValue(json))
            {
                var o = new JsonObject
                {
                    ["document"] = Encoding.UTF8.GetString(document),
                    ["sha256"] = hostData,
                    ["sev_snp_host_data"] = hostData,
                    ["tdx_mr_config_id"] = mrConfigId,
                };
                await output.WriteLineAsync(o.ToJsonString()).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            await output.WriteLineAsync("document:            " + Encoding.UTF8.GetString(document)).ConfigureAwait(false);
            await output.WriteLineAsync("sha256:              " + hostData).ConfigureAwait(false);
            await output.WriteLineAsync("SEV-SNP HOST_DATA:   " + hostData).ConfigureAwait(false);
            await output.WriteLineAsync("TDX MRCONFIGID:      " + mrConfigId).ConfigureAwait(false);
            return ExitCodes.Success;
        });
        command.Subcommands.Add(digest);
        return command;
    }
}
