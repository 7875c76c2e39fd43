using System.Net;
using System.Security.Cryptography;
using System.Text;
using AttestBroker.HardwareSim.Http;
using AttestBroker.Server.Tests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace AttestBroker.Agent.Tests.EndToEnd;

/// <summary>
/// One simulated hardware environment, one broker on real HTTPS on 127.0.0.1 (the server tests' environment), and the
/// simulator's virtual TEE (its server logic, <see cref="SimHttpService"/>) on plain HTTP on 127.0.0.1, for every
/// end-to-end test in this namespace.
/// </summary>
[SetUpFixture]
public sealed class AgentBroker
{
    public const string TdxKey = "agent-tdx";
    public const string TdxKey2 = "agent-tdx-2";
    public const string SnpKey = "agent-snp";
    public const string WrongMrTdKey = "agent-wrong-mrtd";
    public const string OtherMrTd = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    private static WebApplication? _sim;

    internal static BrokerTestEnvironment Env { get; private set; } = null!;

    internal static RunningBroker Broker { get; private set; } = null!;

    /// <summary>The broker's base URL (https://127.0.0.1:port/).</summary>
    internal static string BrokerUrl => Broker.Host.Addresses.Single().ToString();

    /// <summary>The broker's TLS certificate (PEM), to pin with --ca-cert.</summary>
    internal static string CaFile => Path.Combine(Broker.DataDir, "tls.crt");

    /// <summary>The simulator's URL (http://127.0.0.1:port/).</summary>
    internal static string SimUrl { get; private set; } = null!;

    internal static SimHttpService Sim { get; private set; } = null!;

    /// <summary>The key bytes imported under an id.</summary>
    internal static byte[] KeyBytes(string keyId) => SHA256.HashData(Encoding.UTF8.GetBytes("agent key " + keyId));

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        Env = await BrokerTestEnvironment.CreateAsync(seed: null);
        Broker = await RunningBroker.StartAsync(Env, async data =>
        {
            var now = BrokerTestEnvironment.Issued;
            foreach (var id in new[] { TdxKey, TdxKey2, SnpKey, WrongMrTdKey })
            {
                await data.Keys.ImportAsync(id, KeyBytes(id));
            }

            await data.SetPolicyAsync(TdxKey, Env.TdxPolicy("agent-tdx"), "test", now);
            await data.SetPolicyAsync(TdxKey2, Env.TdxPolicy("agent-tdx-2"), "test", now);
            await data.SetPolicyAsync(SnpKey, Env.SnpPolicy("agent-snp"), "test", now);
            await data.SetPolicyAsync(WrongMrTdKey, Env.TdxPolicy("agent-other", mrTd: OtherMrTd), "test", now);
        });

        Sim = new SimHttpService(Env.Pki, [], [], new SimServerBehaviour(), TimeProvider.System);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
        _sim = builder.Build();
        _sim.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            var answer = await Sim.HandleAsync(context.Request.Method, context.Request.Path.Value ?? "/", new Dictionary<string, string>(), body.ToArray(), context.RequestAborted);
            context.Response.StatusCode = answer.Status;
            context.Response.ContentType = answer.ContentType;
            await context.Response.Body.WriteAsync(answer.Body, context.RequestAborted);
        });
        await _sim.StartAsync();
        SimUrl = _sim.Urls.Single().TrimEnd('/') + "/";
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_sim is not null)
        {
            await _sim.DisposeAsync();
        }

        await Broker.DisposeAsync();
        await Env.DisposeAsync();
    }
}
