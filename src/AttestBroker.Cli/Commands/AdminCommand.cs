using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AttestBroker.Keys;
using AttestBroker.Policy;
using AttestBroker.Server;
using AttestBroker.Server.Admin;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker admin</c>: model keys, their release policies and the audit log, either locally on a broker data
/// directory (<c>--data-dir</c>, on the broker's machine) or through a running broker's admin API
/// (<c>--broker URL</c> with an admin token). <c>admin token</c> mints a token from the data directory's
/// <c>admin-signing.key</c> for single-machine use. Exit codes: 0 done, 1 refused (401/403), denied, broken chain or
/// backend failure, 2 usage, input or connection error.
/// </summary>
internal static class AdminCommand
{
    private const long MaxKeyFileBytes = 4096;
    private const long MaxPolicyBytes = 1024 * 1024;

    public static Command Create()
    {
        var command = new Command("admin", "Administer the broker: model keys, release policies and the audit log, locally (--data-dir) or through the admin API (--broker).");
        command.Subcommands.Add(CreateToken());
        var key = new Command("key", "Model keys (AES-256) in the broker's keystore.");
        key.Subcommands.Add(CreateKeyCreate());
        key.Subcommands.Add(CreateImport());
        key.Subcommands.Add(CreateList());
        key.Subcommands.Add(CreateRotate());
        key.Subcommands.Add(CreateState("disable", "Stop releasing the key at once.", disable: true));
        key.Subcommands.Add(CreateState("enable", "Release the key again.", disable: false));
        var policy = new Command("policy", "Release policies (one per key, versioned).");
        policy.Subcommands.Add(CreatePolicySet());
        policy.Subcommands.Add(CreatePolicyGet());
        policy.Subcommands.Add(CreatePolicyHistory());
        policy.Subcommands.Add(CreatePolicyTest());
        var audit = new Command("audit", "The broker's hash-chained audit log.");
        audit.Subcommands.Add(CreateAuditVerify());
        audit.Subcommands.Add(CreateAuditExport());
        command.Subcommands.Add(key);
        command.Subcommands.Add(policy);
        command.Subcommands.Add(audit);
        return command;
    }

    private static Option<string> KeyId() => new("--id") { Description = "Key id: 1 .. 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.", Required = true };

    private static Option<string?> Backend(string what) => new("--backend") { Description = what + " With --broker only: the running broker knows its backends (Broker:KeyBackends); --data-dir acts on the embedded keystore." };

    /// <summary>The --backend value, refused with --data-dir (a data directory holds only the embedded keystore).</summary>
    private static string? BackendValue(ParseResult parse, Option<string?> option, string? dataDir)
    {
        var value = parse.GetValue(option);
        if (value is not null && dataDir is not null)
        {
            throw new CliUsageException("--backend goes with --broker: a data directory (--data-dir) holds only the embedded keystore");
        }

        if (value is not null && !KeyBackendsOptions.IsBackendName(value) && value != "embedded")
        {
            throw new CliUsageException("--backend: a backend name is 1 .. 63 lowercase letters, digits and '-', starting with a letter");
        }

        return value;
    }

    private static Option<string> PolicyKey() => new("--key") { Description = "The key the policy governs.", Required = true };

    // ---- admin token ----

    private static Command CreateToken()
    {
        var roles = new Option<string[]>("--role") { Description = $"Role the token carries (repeatable): {string.Join(", ", AdminRoles.All)}.", Required = true };
        var subject = new Option<string?>("--subject") { Description = "The token's subject, recorded as the actor of every audited admin call (default: the user name)." };
        var lifetime = new Option<string>("--lifetime") { Description = "How long the token is valid: 30s, 15m, 8h, 1d (at most 1d).", DefaultValueFactory = _ => "15m" };
        var dataDir = new Option<string?>("--data-dir") { Description = "The broker's data directory holding admin-signing.key (made on first use; default: $Broker__DataDirectory)." };
        var audience = new Option<string>("--audience") { Description = "The token's aud (must equal the broker's Broker:Admin:Audience).", DefaultValueFactory = _ => AdminTokens.DefaultAudience };
        var command = new Command("token", "Mint an admin token (ES256 JWT) with the data directory's local admin signing key; prints it on standard output.") { roles, subject, lifetime, dataDir, audience };
        command.SetAction(async (parse, ct) =>
        {
            var wanted = parse.GetRequiredValue(roles);
            foreach (var r in wanted)
            {
                if (!AdminRoles.All.Contains(r))
                {
                    throw new CliUsageException($"--role: {r} is not one of {string.Join(", ", AdminRoles.All)}");
                }
            }

            var span = Durations.Parse(parse.GetValue(lifetime)!, "--lifetime");
            if (span > AdminTokens.MaximumLocalLifetime)
            {
                throw new CliUsageException("--lifetime: at most 1d");
            }

            var dir = parse.GetValue(dataDir) ?? Environment.GetEnvironmentVariable("Broker__DataDirectory")
                ?? throw new CliUsageException("--data-dir: give the broker's data directory (or set Broker__DataDirectory)");
            var sub = parse.GetValue(subject) ?? Environment.UserName;
            if (string.IsNullOrWhiteSpace(sub) || sub.Length > 256)
            {
                throw new CliUsageException("--subject: 1 .. 256 characters");
            }

            Directory.CreateDirectory(dir);
            ECDsa key;
            try
            {
                key = AdminTokens.LoadOrCreateLocalKey(Path.GetFullPath(dir));
            }
            catch (BrokerStartupException ex)
            {
                throw new CliUsageException("--data-dir: " + ex.Message, ex);
            }

            using (key)
            {
                var token = AdminTokens.Mint(key, sub, [.. wanted.Distinct(StringComparer.Ordinal)], DateTimeOffset.UtcNow, span, parse.GetValue(audience)!);
                await parse.InvocationConfiguration.Output.WriteLineAsync(token).ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    // ---- keys ----

    private static Command CreateKeyCreate()
    {
        var target = new AdminTarget();
        var id = KeyId();
        var backend = Backend("The key backend to create the key in (default: the broker's Broker:KeyBackends:Default).");
        var command = target.AddTo(new Command("create", "Create a random AES-256 model key under a new id (a new model key is always a new id).") { id, backend });
        command.SetAction(async (parse, ct) =>
        {
            var keyId = parse.GetRequiredValue(id);
            var output = parse.InvocationConfiguration.Output;
            var local = target.LocalDataDir(parse);
            var backendName = BackendValue(parse, backend, local);
            if (local is { } dir)
            {
                await using var data = await OpenAsync(dir, ct).ConfigureAwait(false);
                var info = await KeyStoreAsync(() => data.Keys.CreateAsync(keyId, ct)).ConfigureAwait(false);
                await data.Storage.Audit.AppendAsync(new Storage.AuditEvent("key.create", DateTimeOffset.UtcNow, "admin-cli", KeyId: keyId), ct).ConfigureAwait(false);
                await output.WriteLineAsync($"created key {info.KeyId} (KEK version {info.WrappingKeyVersion})").ConfigureAwait(false);
                return ExitCodes.Success;
            }

            using var http = target.Connect(parse);
            var request = new JsonObject { ["id"] = keyId };
            if (backendName is not null)
            {
                request["backend"] = backendName;
            }

            var r = await http.PostJsonAsync("v1/admin/keys", request, ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
            }

            await output.WriteLineAsync($"created key {(string?)r.Json!["id"]} in backend {(string?)r.Json["backend"]} (KEK version {(int?)r.Json["kek_version"]})").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateImport()
    {
        var target = new AdminTarget();
        var id = KeyId();
        var file = new Option<string>("--key-file") { Description = "The 32-byte model key, raw or base64 text (as written by 'attestbroker model keygen').", Required = true };
        var backend = Backend("The key backend to import the key into (default: the broker's Broker:KeyBackends:Default).");
        var command = target.AddTo(new Command("import", "Wrap a model key under the KEK (or the named backend's wrapping key) and store it under an id.") { id, file, backend });
        command.SetAction(async (parse, ct) =>
        {
            var keyId = parse.GetRequiredValue(id);
            var output = parse.InvocationConfiguration.Output;
            var dir = target.LocalDataDir(parse);
            var backendName = BackendValue(parse, backend, dir);
            var keyBytes = ReadKeyFile(parse.GetRequiredValue(file));
            try
            {
                if (dir is not null)
                {
                    await using var data = await OpenAsync(dir, ct).ConfigureAwait(false);
                    var info = await KeyStoreAsync(() => data.Keys.ImportAsync(keyId, keyBytes, ct)).ConfigureAwait(false);
                    await output.WriteLineAsync($"imported key {info.KeyId} (KEK version {info.WrappingKeyVersion})").ConfigureAwait(false);
                    return ExitCodes.Success;
                }

                using var http = target.Connect(parse);
                var body = ModelKeyImport.ImportBody(keyBytes, backendName);
                try
                {
                    using var content = new ByteArrayContentZeroed(body);
                    var r = await http.SendAsync(HttpMethod.Post, AdminText.KeyPath(keyId) + "/import", content, ct).ConfigureAwait(false);
                    if (!r.Ok)
                    {
                        return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
                    }

                    await output.WriteLineAsync($"imported key {(string?)r.Json!["id"]} in backend {(string?)r.Json["backend"]} (KEK version {(int?)r.Json["kek_version"]})").ConfigureAwait(false);
                    return ExitCodes.Success;
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(body);
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(keyBytes);
            }
        });
        return command;
    }

    private static Command CreateList()
    {
        var target = new AdminTarget();
        var command = target.AddTo(new Command("list", "List key ids, states and current policy versions (never key bytes)."));
        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            if (target.LocalDataDir(parse) is { } dir)
            {
                await using var data = await OpenAsync(dir, ct).ConfigureAwait(false);
                foreach (var k in await data.Keys.ListAsync(ct).ConfigureAwait(false))
                {
                    var policy = await data.Storage.Policies.GetCurrentAsync(k.KeyId, ct).ConfigureAwait(false);
                    var p = policy is null ? "no policy (never released)" : $"policy version {policy.Version}";
                    await output.WriteLineAsync($"{k.KeyId}\t{k.State}\t{p}").ConfigureAwait(false);
                }

                return ExitCodes.Success;
            }

            using var http = target.Connect(parse);
            var r = await http.GetAsync("v1/admin/keys", ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
            }

            foreach (var k in r.Json!["keys"]!.AsArray())
            {
                await output.WriteLineAsync(AdminText.KeyLine(k!)).ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateRotate()
    {
        var target = new AdminTarget();
        var backend = Backend("Rotate this key backend instead of the KEK: Vault Transit and Key Vault rewrap every key to the newest version of their wrapping key (rotating it first when the backend has RotateInVault), Kubernetes Secrets rewrap under the current KEK.");
        var command = target.AddTo(new Command("rotate", "Rotate the key-encryption key: a new KEK version, every model key re-wrapped under it while releases continue; or with --backend, one key backend. (A new model key is a new id: 'admin key create'.)") { backend });
        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            int version, rewrapped;
            IEnumerable<int> retired;
            var local = target.LocalDataDir(parse);
            var backendName = BackendValue(parse, backend, local);
            if (local is { } dir)
            {
                var marker = Path.Combine(dir, Server.BrokerData.KekDirectory, Server.BrokerKeyBackends.KekSharedMarkerFile);
                if (File.Exists(marker))
                {
                    await parse.InvocationConfiguration.Error.WriteLineAsync(
                        $"error: this KEK also wraps the keys of kubernetes-secrets backend(s) ({string.Join(", ", File.ReadAllLines(marker).Where(l => l.Length > 0))}), which --data-dir cannot see; rotating here could retire a version their Secrets still use. Rotate through the running broker: admin key rotate --broker URL").ConfigureAwait(false);
                    return ExitCodes.Usage;
                }

                await using var data = await OpenAsync(dir, ct).ConfigureAwait(false);
                var result = await KeyStoreAsync(() => data.Keys.RotateKekAsync(ct)).ConfigureAwait(false);
                await data.Storage.Audit.AppendAsync(new Storage.AuditEvent("kek.rotate", DateTimeOffset.UtcNow, "admin-cli",
                    Details: new Dictionary<string, string>(StringComparer.Ordinal) { ["kek_version"] = result.KekVersion.ToString(CultureInfo.InvariantCulture) }), ct).ConfigureAwait(false);
                (version, rewrapped, retired) = (result.KekVersion, result.Rewrapped, result.RetiredVersions);
            }
            else
            {
                using var http = target.Connect(parse);
                var r = await http.PostJsonAsync("v1/admin/kek/rotate", backendName is null ? null : new JsonObject { ["backend"] = backendName }, ct).ConfigureAwait(false);
                if (!r.Ok)
                {
                    return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
                }

                if (backendName is not null)
                {
                    await output.WriteLineAsync($"backend {backendName} rotated: {(int)r.Json!["rewrapped"]!} key(s) re-wrapped (wrapping key version {(int)r.Json["kek_version"]!})").ConfigureAwait(false);
                    return ExitCodes.Success;
                }

                (version, rewrapped, retired) = ((int)r.Json!["kek_version"]!, (int)r.Json["rewrapped"]!, r.Json["retired_versions"]!.AsArray().Select(v => (int)v!).ToList());
            }

            var old = retired.ToList();
            await output.WriteLineAsync($"KEK rotated to version {version}: {rewrapped} key(s) re-wrapped{(old.Count > 0 ? "; retired version(s) " + string.Join(", ", old) : string.Empty)}").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateState(string name, string description, bool disable)
    {
        var target = new AdminTarget();
        var id = KeyId();
        var command = target.AddTo(new Command(name, description) { id });
        command.SetAction(async (parse, ct) =>
        {
            var keyId = parse.GetRequiredValue(id);
            var output = parse.InvocationConfiguration.Output;
            if (target.LocalDataDir(parse) is { } dir)
            {
                await using var data = await OpenAsync(dir, ct).ConfigureAwait(false);
                var info = await KeyStoreAsync(() => disable ? data.Keys.DisableAsync(keyId, ct) : data.Keys.EnableAsync(keyId, ct)).ConfigureAwait(false);
                await data.Storage.Audit.AppendAsync(new Storage.AuditEvent("key." + name, DateTimeOffset.UtcNow, "admin-cli", KeyId: keyId), ct).ConfigureAwait(false);
                await output.WriteLineAsync($"{info.KeyId}: {info.State}").ConfigureAwait(false);
                return ExitCodes.Success;
            }

            using var http = target.Connect(parse);
            var r = await http.PostJsonAsync(AdminText.KeyPath(keyId) + "/" + name, null, ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
            }

            await output.WriteLineAsync($"{(string?)r.Json!["id"]}: {((string?)r.Json["state"] == "enabled" ? "Enabled" : "Disabled")}").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    // ---- policies ----

    private static Command CreatePolicySet()
    {
        var target = new AdminTarget();
        var id = PolicyKey();
        var file = new Option<string>("--file") { Description = "The release policy, YAML or JSON (docs/policy.md).", Required = true };
        var command = target.AddTo(new Command("set", "Validate a release policy and store it as a new version for a key (the running broker uses it from the next request).") { id, file });
        command.SetAction(async (parse, ct) =>
        {
            var path = parse.GetRequiredValue(file);
            if (!File.Exists(path) || new FileInfo(path).Length > MaxPolicyBytes)
            {
                throw new CliUsageException($"--file: {path} does not exist or is larger than {MaxPolicyBytes} bytes");
            }

            var text = await File.ReadAllTextAsync(path, ct).ConfigureAwait(false);
            var keyId = parse.GetRequiredValue(id);
            var output = parse.InvocationConfiguration.Output;
            if (target.LocalDataDir(parse) is { } dir)
            {
                await using var data = await OpenAsync(dir, ct).ConfigureAwait(false);
                try
                {
                    var stored = await data.SetPolicyAsync(keyId, text, "admin-cli", DateTimeOffset.UtcNow, ct).ConfigureAwait(false);
                    await output.WriteLineAsync($"policy for {stored.Name}: version {stored.Version} (sha256 {stored.Sha256Hex})").ConfigureAwait(false);
                    return ExitCodes.Success;
                }
                catch (PolicyFormatException ex)
                {
                    throw new CliUsageException($"{path}: {ex.Message}", ex);
                }
                catch (BrokerStartupException ex)
                {
                    throw new CliUsageException(ex.Message, ex);
                }
            }

            using var http = target.Connect(parse);
            var mediaType = text.TrimStart('\uFEFF').TrimStart().StartsWith('{') ? "application/json" : "application/yaml";
            using var content = AdminHttp.Content(text, mediaType);
            var r = await http.SendAsync(HttpMethod.Put, AdminText.PolicyPath(keyId), content, ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
            }

            var unchanged = r.Json!["changed"] is JsonValue c && !(bool)c ? " (unchanged)" : string.Empty;
            await output.WriteLineAsync($"policy for {(string?)r.Json["key_id"]}: version {(long?)r.Json["version"]} (sha256 {(string?)r.Json["sha256"]}){unchanged}").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreatePolicyGet()
    {
        var target = new AdminTarget();
        var id = PolicyKey();
        var version = new Option<long?>("--version") { Description = "A past version (default: the current one)." };
        var command = target.AddTo(new Command("get", "Print a key's release policy document (the current version, or --version N).") { id, version });
        command.SetAction(async (parse, ct) =>
        {
            var keyId = parse.GetRequiredValue(id);
            var v = parse.GetValue(version);
            var output = parse.InvocationConfiguration.Output;
            if (target.LocalDataDir(parse) is { } dir)
            {
                await using var data = await OpenAsync(dir, ct).ConfigureAwait(false);
                var stored = v is { } n ? await data.Storage.Policies.GetVersionAsync(keyId, n, ct).ConfigureAwait(false) : await data.Storage.Policies.GetCurrentAsync(keyId, ct).ConfigureAwait(false);
                if (stored is null)
                {
                    throw new CliUsageException(v is null ? $"key {keyId} has no release policy" : $"key {keyId} has no policy version {v}");
                }

                await output.WriteAsync(stored.Document).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            using var http = target.Connect(parse);
            var path = AdminText.PolicyPath(keyId) + (v is { } ver ? "/versions/" + ver.ToString(CultureInfo.InvariantCulture) : string.Empty);
            var r = await http.GetAsync(path, ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
            }

            await parse.InvocationConfiguration.Error.WriteLineAsync($"# policy for {(string?)r.Json!["key_id"]}: version {(long?)r.Json["version"]}, set by {(string?)r.Json["author"]} at {(string?)r.Json["created_at"]}").ConfigureAwait(false);
            await output.WriteAsync((string?)r.Json["document"]).ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreatePolicyHistory()
    {
        var target = new AdminTarget();
        var id = PolicyKey();
        var command = target.AddTo(new Command("history", "List every version of a key's release policy: version, time, author, SHA-256.") { id });
        command.SetAction(async (parse, ct) =>
        {
            var keyId = parse.GetRequiredValue(id);
            var output = parse.InvocationConfiguration.Output;
            if (target.LocalDataDir(parse) is { } dir)
            {
                await using var data = await OpenAsync(dir, ct).ConfigureAwait(false);
                var history = await data.Storage.Policies.HistoryAsync(keyId, ct).ConfigureAwait(false);
                if (history.Count == 0)
                {
                    throw new CliUsageException($"key {keyId} has no release policy");
                }

                foreach (var h in history)
                {
                    await output.WriteLineAsync($"{h.Version}\t{AdminService.FormatTime(h.CreatedAt)}\t{h.Author}\t{h.Sha256Hex}").ConfigureAwait(false);
                }

                return ExitCodes.Success;
            }

            using var http = target.Connect(parse);
            var r = await http.GetAsync(AdminText.PolicyPath(keyId) + "/history", ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
            }

            foreach (var h in r.Json!["versions"]!.AsArray())
            {
                await output.WriteLineAsync($"{(long?)h!["version"]}\t{(string?)h["created_at"]}\t{(string?)h["author"]}\t{(string?)h["sha256"]}").ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreatePolicyTest()
    {
        var target = new AdminTarget();
        var id = PolicyKey();
        var evidence = new Option<string>("--evidence") { Description = "The evidence: a TDX quote or an SEV-SNP report, raw binary.", Required = true };
        var at = new Option<string?>("--at") { Description = "Verification time, RFC 3339 (default: the broker's now)." };
        var policyFile = new Option<string?>("--policy") { Description = "Test this policy document instead of the key's stored one." };
        var json = new Option<bool>("--json") { Description = "Print the broker's answer as JSON." };
        var command = target.AddTo(new Command("test", "Dry run on the broker: verify evidence with the broker's verifiers and evaluate the key's policy; lists every failing rule. Releases nothing. Exit 0 granted, 1 denied.") { id, evidence, at, policyFile, json }, remoteOnly: true);
        command.SetAction(async (parse, ct) =>
        {
            target.LocalDataDir(parse, remoteOnly: true);
            var keyId = parse.GetRequiredValue(id);
            var evidencePath = parse.GetRequiredValue(evidence);
            byte[] bytes;
            try
            {
                bytes = VerifyCommand.ReadEvidence(evidencePath);
            }
            catch (CliUsageException ex)
            {
                throw new CliUsageException($"--evidence: {evidencePath}: {ex.Message}", ex);
            }

            if (bytes.Length > AdminService.MaxEvidenceBytes)
            {
                throw new CliUsageException($"--evidence: {evidencePath} is larger than {AdminService.MaxEvidenceBytes} bytes");
            }

            var body = new JsonObject { ["evidence"] = Convert.ToBase64String(bytes) };
            if (parse.GetValue(at) is { } t)
            {
                body["at"] = t;
            }

            if (parse.GetValue(policyFile) is { } pf)
            {
                if (!File.Exists(pf) || new FileInfo(pf).Length > MaxPolicyBytes)
                {
                    throw new CliUsageException($"--policy: {pf} does not exist or is larger than {MaxPolicyBytes} bytes");
                }

                body["policy"] = await File.ReadAllTextAsync(pf, ct).ConfigureAwait(false);
            }

            using var http = target.Connect(parse);
            var r = await http.PostJsonAsync(AdminText.PolicyPath(keyId) + "/test", body, ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
            }

            var output = parse.InvocationConfiguration.Output;
            var granted = (string?)r.Json!["decision"] == "granted";
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(r.Json.ToJsonString()).ConfigureAwait(false);
                return granted ? ExitCodes.Success : ExitCodes.Failure;
            }

            var v = r.Json["verification"]!;
            var sim = (bool?)v["simulated"] == true ? ", SIMULATED root" : string.Empty;
            var crl = (bool?)v["crl_checked"] == true ? string.Empty : ", CRL not checked";
            await output.WriteLineAsync($"{(granted ? "granted" : "denied")} by policy {(string?)r.Json["policy"]} (version {(long?)r.Json["policy_version"]}) for {evidencePath} ({(string?)v["tee"]}{sim}{crl}) [dry run on the broker]").ConfigureAwait(false);
            foreach (var f in r.Json["failures"]!.AsArray())
            {
                await output.WriteLineAsync($"  x {(string?)f!["code"]} [{(string?)f["rule"]}] {(string?)f["claim"]}: {(string?)f["message"]}").ConfigureAwait(false);
                await output.WriteLineAsync($"      expected: {f["expected"]?.ToJsonString() ?? "(absent)"}").ConfigureAwait(false);
                await output.WriteLineAsync($"      actual:   {f["actual"]?.ToJsonString() ?? "(absent)"}").ConfigureAwait(false);
            }

            await output.WriteLineAsync($"  note: REPORT_DATA {(string?)r.Json["report_data_binding"]}").ConfigureAwait(false);
            return granted ? ExitCodes.Success : ExitCodes.Failure;
        });
        return command;
    }

    // ---- audit ----

    private static Command CreateAuditVerify()
    {
        var target = new AdminTarget();
        var headKey = new Option<string?>("--head-key") { Description = "With --data-dir: ECDSA P-256 public key (PEM) that signed the audit heads (GET /v1/admin/audit/head-key serves it)." };
        var command = target.AddTo(new Command("verify", "Walk the audit chain (and the signed heads): exit 0 when intact, 1 naming the first edited, deleted or reordered row.") { headKey });
        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            if (target.LocalDataDir(parse) is { } dir)
            {
                return await AuditCommand.VerifyLocalAsync(dir, parse.GetValue(headKey), output, ct).ConfigureAwait(false);
            }

            if (parse.GetValue(headKey) is not null)
            {
                throw new CliUsageException("--head-key goes with --data-dir; through --broker the broker checks the heads with its own audit-head key");
            }

            using var http = target.Connect(parse);
            var r = await http.GetAsync("v1/admin/audit/verify", ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
            }

            var j = r.Json!;
            if (j["first_break"] is { } b)
            {
                await output.WriteLineAsync($"audit chain broken at row {(long?)b["sequence"]}: {((string?)b["kind"])?.Replace('-', ' ')}: {(string?)b["detail"]} ({(long?)j["rows_checked"]} rows intact before it)").ConfigureAwait(false);
                return ExitCodes.Failure;
            }

            await output.WriteLineAsync($"audit chain intact: {(long?)j["rows_checked"]} rows (last row {(long?)j["last_sequence"]}), {(long?)j["heads_checked"]} signed heads verified (head key {(string?)j["head_key_id"]})").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateAuditExport()
    {
        var target = new AdminTarget();
        var outFile = new Option<string?>("--out") { Description = "Write the JSON lines to this file (created; refuses to overwrite) instead of standard output." };
        var command = target.AddTo(new Command("export", "Write every audit row as one JSON object per line.") { outFile });
        command.SetAction(async (parse, ct) =>
        {
            var path = parse.GetValue(outFile);
            if (target.LocalDataDir(parse) is { } dir)
            {
                return await AuditCommand.ExportLocalAsync(dir, path, parse.InvocationConfiguration, ct).ConfigureAwait(false);
            }

            using var http = target.Connect(parse);
            var r = await http.GetAsync("v1/admin/audit/export", ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                return await AdminHttp.FailAsync(r, parse.InvocationConfiguration.Error).ConfigureAwait(false);
            }

            if (path is null)
            {
                await parse.InvocationConfiguration.Output.WriteAsync(r.Text).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
            await using (stream.ConfigureAwait(false))
            {
                await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(r.Text), ct).ConfigureAwait(false);
            }

            var rows = r.Text.Count(c => c == '\n');
            await parse.InvocationConfiguration.Error.WriteLineAsync($"exported {rows} rows to {path}").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    // ---- helpers ----

    private static async Task<T> KeyStoreAsync<T>(Func<Task<T>> operation)
    {
        try
        {
            return await operation().ConfigureAwait(false);
        }
        catch (KeyStoreException ex)
        {
            throw new CliUsageException($"key: {ex.Error}: {ex.Message}", ex);
        }
    }

    private static async Task<BrokerData> OpenAsync(string dataDir, CancellationToken ct)
    {
        try
        {
            return await BrokerData.OpenAsync(dataDir, null, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is KeyStoreException or Storage.StorageException or BrokerStartupException or IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"--data-dir: {ex.Message}", ex);
        }
    }

    /// <summary>Exactly 32 raw bytes, or base64 text of 32 bytes with surrounding whitespace. The caller zeroes the result.</summary>
    private static byte[] ReadKeyFile(string path)
    {
        if (!File.Exists(path) || new FileInfo(path).Length > MaxKeyFileBytes)
        {
            throw new CliUsageException($"--key-file: {path} does not exist or is not a key file");
        }

        var content = File.ReadAllBytes(path);
        try
        {
            if (content.Length == IKeyBackend.KeyLength)
            {
                return (byte[])content.Clone();
            }

            var text = content.AsSpan();
            var start = 0;
            var end = text.Length;
            while (start < end && text[start] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t')
            {
                start++;
            }

            while (end > start && text[end - 1] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t')
            {
                end--;
            }

            var decoded = new byte[IKeyBackend.KeyLength];
            var status = System.Buffers.Text.Base64.DecodeFromUtf8(text[start..end], decoded, out var consumed, out var written);
            if (status != System.Buffers.OperationStatus.Done || consumed != end - start || written != IKeyBackend.KeyLength)
            {
                CryptographicOperations.ZeroMemory(decoded);
                throw new CliUsageException($"--key-file: {path} is neither 32 raw bytes nor base64 of 32 bytes");
            }

            return decoded;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
        }
    }

    /// <summary>Request content over a caller-owned buffer that the caller zeroes after the request.</summary>
    private sealed class ByteArrayContentZeroed : ByteArrayContent
    {
        public ByteArrayContentZeroed(byte[] body)
            : base(body)
        {
            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        }
    }
}
