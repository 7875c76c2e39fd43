using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Model;

/// <summary>
/// <c>model encrypt --broker</c> against a scripted admin API on plain HTTP (<c>--allow-http</c>): what is sent, and
/// what is left when the import fails after the model was encrypted (the end-to-end suite with the real broker is
/// tests/AttestBroker.Agent.Tests/EndToEnd/ModelEncryptBrokerEndToEndTests.cs).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class Model_encrypt_imports_through_the_admin_API
{
    private const string Token = "header.payload.signature";

    private string _root = null!;
    private string _plain = null!;
    private string _out = null!;
    private WebApplication _app = null!;
    private string _url = null!;
    private Func<HttpContext, byte[], Task> _onImport = null!;
    private readonly List<string> _requests = [];
    private byte[]? _importBody;
    private string? _importContentType;
    private string? _authorization;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
        _app = builder.Build();
        _app.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            lock (_requests)
            {
                _requests.Add(context.Request.Method + " " + context.Request.Path);
            }

            _authorization = context.Request.Headers.Authorization;
            if (context.Request.Method == "GET")
            {
                await Problem(context, 404, "unknown-key", "Unknown key", "no key with id");
                return;
            }

            _importBody = body.ToArray();
            _importContentType = context.Request.ContentType;
            await _onImport(context, _importBody);
        });
        await _app.StartAsync();
        _url = _app.Urls.Single().TrimEnd('/') + "/";
    }

    [OneTimeTearDown]
    public async Task StopAsync() => await _app.DisposeAsync();

    [SetUp]
    public void Model()
    {
        _root = Directory.CreateTempSubdirectory("ab-cli-import-").FullName;
        _plain = Path.Combine(_root, "plain");
        _out = Path.Combine(_root, "published", "enc");
        Directory.CreateDirectory(_plain);
        File.WriteAllBytes(Path.Combine(_plain, "w.bin"), new byte[5000]);
        _requests.Clear();
        _importBody = null;
        _importContentType = null;
        _authorization = null;
    }

    [TearDown]
    public void Remove() => Directory.Delete(_root, recursive: true);

    private static Task Problem(HttpContext context, int status, string code, string title, string detail)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/problem+json";
        return context.Response.WriteAsync(new JsonObject
        {
            ["type"] = "urn:attestbroker:problem:" + code,
            ["title"] = title,
            ["status"] = status,
            ["detail"] = detail,
            ["code"] = code,
        }.ToJsonString());
    }

    private async Task<(int Exit, string Out, string Err)> EncryptAsync(params string[] extra)
    {
        var tokenFile = Path.Combine(_root, "token");
        await File.WriteAllTextAsync(tokenFile, Token + "\n");
        return await CliRunner.RunAsync(["model", "encrypt", _plain, "--key-id", "model-1", "--out", _out, "--broker", _url, "--token-file", tokenFile, "--allow-http", .. extra]);
    }

    private static Task Created(HttpContext context, string backend) =>
        WriteJson(context, 201, $"{{\"id\":\"model-1\",\"state\":\"enabled\",\"backend\":\"{backend}\",\"kek_version\":1}}");

    private static Task WriteJson(HttpContext context, int status, string json)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(json);
    }

    private void AssertNothingPublished()
    {
        var parent = Path.GetDirectoryName(_out)!;
        Assert.That(Directory.Exists(parent) ? Directory.GetFileSystemEntries(parent, "*", SearchOption.AllDirectories) : [], Is.Empty, "nothing at or beside --out");
    }

    [Test]
    public async Task The_import_sends_only_a_fresh_32_byte_key_with_the_bearer_token_and_the_model_decrypts_with_it()
    {
        _onImport = (context, _) =>
        {
            context.Response.StatusCode = 201;
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync("{\"id\":\"model-1\",\"state\":\"enabled\",\"backend\":\"embedded\",\"kek_version\":3}");
        };
        var (exit, stdout, stderr) = await EncryptAsync();
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.Multiple(() =>
        {
            Assert.That(stderr, Does.Contain("WARNING: --allow-http"));
            Assert.That(stdout, Does.EndWith("(backend embedded, KEK version 3)\n"));
            Assert.That(_requests, Is.EqualTo(new[] { "GET /v1/admin/keys/model-1", "POST /v1/admin/keys/model-1/import" }));
            Assert.That(_authorization, Is.EqualTo("Bearer " + Token));
            Assert.That(_importContentType, Is.EqualTo("application/json"));
        });

        var body = JsonNode.Parse(_importBody)!.AsObject();
        Assert.That(body.Select(p => p.Key), Is.EqualTo(new[] { "key" }));
        var key = Convert.FromBase64String((string)body["key"]!);
        Assert.That(key, Has.Length.EqualTo(32));

        // The key the broker received is the one the model was encrypted with.
        var keyFile = Path.Combine(_root, "received.key");
        await File.WriteAllTextAsync(keyFile, Convert.ToBase64String(key));
        var dest = Path.Combine(_root, "dec");
        var decrypt = await CliRunner.RunAsync("model", "decrypt", _out, "--key-file", keyFile, "--out", dest, "--allow-disk", "--key-id", "model-1");
        Assert.That(decrypt.Exit, Is.EqualTo(0), decrypt.Err);
        Assert.That(File.ReadAllBytes(Path.Combine(dest, "w.bin")), Is.EqualTo(new byte[5000]));
    }

    [Test]
    public async Task An_existing_empty_out_directory_receives_the_encrypted_model()
    {
        Directory.CreateDirectory(_out);
        _onImport = (context, _) => Created(context, "embedded");
        var (exit, _, stderr) = await EncryptAsync();
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(Directory.GetFiles(_out).Select(Path.GetFileName).Order(StringComparer.Ordinal), Is.EqualTo(new[] { "manifest.json", "w.bin.menc" }));
        Assert.That(Directory.GetFileSystemEntries(Path.GetDirectoryName(_out)!), Has.Length.EqualTo(1), "no staging directory left");
    }

    [Test]
    public async Task Two_runs_import_different_keys()
    {
        var keys = new List<string>();
        _onImport = (context, body) =>
        {
            keys.Add((string)JsonNode.Parse(body)!["key"]!);
            context.Response.StatusCode = 201;
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync("{\"id\":\"model-1\",\"kek_version\":1}");
        };
        Assert.That((await EncryptAsync()).Exit, Is.Zero);
        Directory.Delete(_out, recursive: true);
        Assert.That((await EncryptAsync()).Exit, Is.Zero);
        Assert.That(keys.Distinct().Count(), Is.EqualTo(2));
    }

    [Test]
    public async Task Backend_names_the_key_backend_in_the_import_body()
    {
        _onImport = (context, _) => Created(context, "vault");
        var (exit, stdout, stderr) = await EncryptAsync("--backend", "vault");
        Assert.That(exit, Is.EqualTo(0), stderr);
        var body = JsonNode.Parse(_importBody)!.AsObject();
        Assert.Multiple(() =>
        {
            Assert.That(body.Select(p => p.Key), Is.EqualTo(new[] { "key", "backend" }));
            Assert.That((string)body["backend"]!, Is.EqualTo("vault"));
            Assert.That(stdout, Does.Contain("(backend vault, KEK version 1)"));
        });
    }

    [Test]
    public async Task A_backend_the_broker_does_not_know_exits_2_with_its_problem_and_the_ciphertext_is_deleted()
    {
        _onImport = (context, _) => Problem(context, 400, "unknown-backend", "Unknown key backend", "no key backend named 'hsm'");
        var (exit, _, stderr) = await EncryptAsync("--backend", "hsm");
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain("error: 400 Unknown key backend: no key backend named 'hsm' (unknown-backend)"));
        });
        AssertNothingPublished();
    }

    [TestCase("Vault_1", "--backend: a backend name is")]
    public async Task A_malformed_backend_name_is_a_usage_error_before_the_broker_is_asked(string name, string message)
    {
        var (exit, _, stderr) = await EncryptAsync("--backend", name);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain(message));
            Assert.That(_requests, Is.Empty);
        });
        AssertNothingPublished();
    }

    [Test]
    public async Task A_key_id_taken_between_the_check_and_the_import_exits_1_with_the_409_problem_and_the_ciphertext_is_deleted()
    {
        _onImport = (context, _) => Problem(context, 409, "key-exists", "Key exists", "key model-1 exists; a new model key needs a new id");
        var (exit, stdout, stderr) = await EncryptAsync();
        Assert.Multiple(() =>
        {
            Assert.That((exit, stdout), Is.EqualTo((1, string.Empty)));
            Assert.That(stderr, Does.Contain("error: 409 Key exists: key model-1 exists; a new model key needs a new id (key-exists)"));
        });
        AssertNothingPublished();
    }

    [Test]
    public async Task A_broker_failure_during_the_import_exits_1_and_the_ciphertext_is_deleted()
    {
        _onImport = (context, _) => Problem(context, 503, "backend-unavailable", "Key backend unavailable", "vault is down");
        var (exit, _, stderr) = await EncryptAsync();
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("error: 503 Key backend unavailable: vault is down (backend-unavailable)"));
        });
        AssertNothingPublished();
    }

    [Test]
    public async Task A_connection_cut_during_the_import_exits_2_saying_the_outcome_is_unknown_and_the_ciphertext_is_deleted()
    {
        _onImport = (context, _) =>
        {
            context.Abort();
            return Task.CompletedTask;
        };
        var (exit, _, stderr) = await EncryptAsync();
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain("the import's outcome is unknown").And.Contain("admin key list"));
        });
        AssertNothingPublished();
    }
}
