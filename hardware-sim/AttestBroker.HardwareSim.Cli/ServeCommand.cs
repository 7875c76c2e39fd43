using System.CommandLine;
using System.Net;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Http;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace AttestBroker.HardwareSim.Cli;

/// <summary>attest-sim serve: the simulated Intel PCS v4, AMD KDS and virtual TEE over HTTP on 127.0.0.1.</summary>
internal static class ServeCommand
{
    private const int MaxRequestBody = 64 * 1024;

    public static Command Create()
    {
        var pkiDir = Commands.PkiOption();
        var listen = new Option<string>("--listen") { Description = "Address to listen on (default 127.0.0.1; 0.0.0.0 to serve other pods, e.g. in the dev overlay of deploy/).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one).", DefaultValueFactory = _ => 8088 };
        var profiles = new Option<string[]>("--profile") { Description = "Platform profile to serve as a named platform (repeatable)." };
        var faults = Commands.FaultOption();
        var latency = new Option<int>("--latency-ms") { Description = "Delay every PCS/KDS response by this many milliseconds." };
        var fail429 = new Option<int>("--fail-429") { Description = "Answer the first N PCS/KDS requests with 429 Too Many Requests (with Retry-After)." };
        var retryAfter = new Option<int>("--retry-after") { Description = "Retry-After seconds sent with 429.", DefaultValueFactory = _ => 1 };
        var fail503 = new Option<int>("--fail-503") { Description = "Answer the next N PCS/KDS requests with 503 Service Unavailable." };
        var stale = new Option<bool>("--stale") { Description = "Serve stale collateral (nextUpdate in the past)." };
        var command = new Command("serve", "Serve the simulated PCS v4 (/sgx/..., /tdx/...), KDS (/vcek/v1/..., /vlek/v1/...) and virtual TEE (POST /sim/v1/evidence) on 127.0.0.1 (or --listen). Behaviour can be changed at run time with POST /sim/v1/control.")
        {
            pkiDir, listen, port, profiles, faults, latency, fail429, retryAfter, fail503, stale,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (!IPAddress.TryParse(parse.GetRequiredValue(listen), out var listenAddress))
            {
                throw new SimulatorException("--listen must be an IP address");
            }

            using var pki = SimPki.Load(parse.GetRequiredValue(pkiDir));
            var profs = (parse.GetValue(profiles) ?? []).Select(SimProfile.LoadFile).ToList();
            var collateralFaults = (parse.GetValue(faults) ?? []).Select(FaultCatalog.Parse).ToList();
            var behaviour = new SimServerBehaviour
            {
                Latency = TimeSpan.FromMilliseconds(Math.Max(0, parse.GetValue(latency))),
                Fail429 = Math.Max(0, parse.GetValue(fail429)),
                RetryAfterSeconds = Math.Max(0, parse.GetValue(retryAfter)),
                Fail503 = Math.Max(0, parse.GetValue(fail503)),
                Stale = parse.GetValue(stale),
            };
            var service = new SimHttpService(pki, profs, collateralFaults, behaviour, TimeProvider.System);

            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(o =>
            {
                o.Listen(listenAddress, parse.GetValue(port));
                o.Limits.MaxRequestBodySize = MaxRequestBody;
                o.AddServerHeader = false;
            });
            await using var app = builder.Build();
            app.Run(async context => await HandleAsync(service, context).ConfigureAwait(false));
            await app.StartAsync(ct).ConfigureAwait(false);
            foreach (var address in app.Urls)
            {
                await parse.InvocationConfiguration.Output.WriteLineAsync($"attest-sim listening on {address} (PCS: /sgx/certification/v4, /tdx/certification/v4; KDS: /vcek/v1, /vlek/v1; virtual TEE: POST /sim/v1/evidence)").ConfigureAwait(false);
            }

            try
            {
                await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C: shut down cleanly.
            }

            await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    private static async Task HandleAsync(SimHttpService service, HttpContext context)
    {
        var query = context.Request.Query.ToDictionary(kv => kv.Key, kv => kv.Value.ToString(), StringComparer.Ordinal);
        byte[] body;
        try
        {
            using var ms = new MemoryStream();
            await context.Request.Body.CopyToAsync(ms, context.RequestAborted).ConfigureAwait(false);
            body = ms.ToArray();
        }
        catch (BadHttpRequestException)
        {
            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            return;
        }

        var response = await service.HandleAsync(context.Request.Method, context.Request.Path.Value ?? "/", query, body, context.RequestAborted).ConfigureAwait(false);
        context.Response.StatusCode = response.Status;
        context.Response.ContentType = response.ContentType;
        foreach (var (k, v) in response.Headers)
        {
            context.Response.Headers[k] = v;
        }

        await context.Response.Body.WriteAsync(response.Body, context.RequestAborted).ConfigureAwait(false);
    }
}
