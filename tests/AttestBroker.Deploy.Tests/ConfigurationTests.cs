using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using AttestBroker.Policy;
using NUnit.Framework;

namespace AttestBroker.Deploy.Tests;

/// <summary>Secrets stay out of environment variables and ConfigMaps; the simulator is trusted in dev only.</summary>
[TestFixture]
public sealed partial class ConfigurationTests
{
    public static IEnumerable<string> Overlays() => PodSecurityTests.Overlays;

    [TestCaseSource(nameof(Overlays))]
    public void No_secret_value_sits_in_an_environment_variable(string overlay)
    {
        var problems = new List<string>();
        foreach (var w in Rendered.Kustomize(overlay).Where(o => o.PodSpec() is not null))
        {
            foreach (var (_, c) in w.PodSpec()!.Containers())
            {
                if (c["envFrom"] is JsonArray { Count: > 0 })
                {
                    problems.Add($"{w.Describe()} {c["name"]}: envFrom (a whole Secret or ConfigMap in the environment)");
                }

                foreach (var e in (c["env"] as JsonArray ?? []).OfType<JsonObject>())
                {
                    var name = (string?)e["name"] ?? string.Empty;
                    if (e["valueFrom"]?["secretKeyRef"] is not null)
                    {
                        problems.Add($"{w.Describe()} {c["name"]}: {name} takes a Secret into the environment (mount it as a file)");
                    }

                    if (e["value"] is JsonValue v && LooksSecret(name, (string?)v ?? string.Empty))
                    {
                        problems.Add($"{w.Describe()} {c["name"]}: {name} holds what looks like a secret");
                    }
                }
            }
        }

        Assert.That(problems, Is.Empty, string.Join("; ", problems));
    }

    [TestCaseSource(nameof(Overlays))]
    public void No_secret_value_sits_in_a_config_map(string overlay)
    {
        var problems = new List<string>();
        foreach (var cm in Rendered.Kustomize(overlay).Where(o => o.Kind() == "ConfigMap"))
        {
            foreach (var (key, value) in cm["data"] as JsonObject ?? [])
            {
                var text = (string?)value ?? string.Empty;
                if (text.Contains("PRIVATE KEY", StringComparison.Ordinal) || PasswordInConnectionString().IsMatch(text) || LongBase64().IsMatch(text))
                {
                    problems.Add($"{cm.Describe()} {key}");
                }

                if (key.EndsWith(".json", StringComparison.Ordinal))
                {
                    var broker = JsonNode.Parse(text)?["Broker"] as JsonObject;
                    foreach (var secretSetting in new[] { "ConnectionString" })
                    {
                        if (broker?["Storage"]?[secretSetting] is not null)
                        {
                            problems.Add($"{cm.Describe()} {key}: Broker:Storage:{secretSetting} (use ConnectionStringFile)");
                        }
                    }
                }
            }

            Assert.That(cm["binaryData"], Is.Null, cm.Describe() + " has binaryData");
        }

        Assert.That(problems, Is.Empty, string.Join("; ", problems));
    }

    [Test]
    public void The_production_overlay_never_trusts_the_simulator()
    {
        var objects = Rendered.Kustomize("overlays/production");
        var all = string.Join('\n', objects.Select(o => o.ToJsonString()));
        Assert.Multiple(() =>
        {
            Assert.That(all, Does.Not.Contain("TrustSimulatorPkiDirectory"));
            Assert.That(all, Does.Not.Contain("attest-sim"));
            Assert.That(all, Does.Not.Contain("sim-pki"));
            Assert.That(all, Does.Not.Contain("trust-simulator"));
        });
    }

    [Test]
    public void The_production_overlay_runs_three_replicas_on_postgresql_with_a_disruption_budget_and_an_autoscaler()
    {
        var objects = Rendered.Kustomize("overlays/production");
        var deployment = objects.Single(o => o.Kind() == "Deployment" && o.Name() == "attestbroker");
        var hpa = objects.Single(o => o.Kind() == "HorizontalPodAutoscaler");
        var pdb = objects.Single(o => o.Kind() == "PodDisruptionBudget");
        var settings = BrokerSettings(objects);
        Assert.Multiple(() =>
        {
            Assert.That((long?)deployment["spec"]?["replicas"], Is.EqualTo(3));
            Assert.That((long?)hpa["spec"]?["minReplicas"], Is.GreaterThanOrEqualTo(3));
            Assert.That((long?)pdb["spec"]?["minAvailable"], Is.EqualTo(2));
            Assert.That((string?)settings["Storage"]?["Provider"], Is.EqualTo("postgres"));
            Assert.That((string?)settings["Storage"]?["ConnectionStringFile"], Does.StartWith("/etc/attestbroker/"));
            Assert.That(settings["Secrets"]?["AllowGeneratedSecrets"]?.GetValue<bool>() ?? false, Is.False);
            Assert.That(settings["Admin"]?["LocalSigner"]?.GetValue<bool>(), Is.False, "production admin tokens come from the OIDC issuer");
        });
    }

    [Test]
    public void The_dev_overlay_trusts_the_simulator_it_runs_with_one_replica()
    {
        var objects = Rendered.Kustomize("overlays/dev");
        var deployment = objects.Single(o => o.Kind() == "Deployment" && o.Name() == "attestbroker");
        var env = (PodSecurityTests.BrokerContainer(objects)["env"] as JsonArray)!.OfType<JsonObject>().ToDictionary(e => (string)e["name"]!, e => (string?)e["value"]);
        var containers = deployment.PodSpec()!.Containers().Select(c => (string?)c.Container["name"]).ToList();
        Assert.Multiple(() =>
        {
            Assert.That((long?)deployment["spec"]?["replicas"], Is.EqualTo(1));
            Assert.That(env["Broker__TrustSimulatorPkiDirectory"], Is.EqualTo("/var/lib/attestbroker/sim-pki"));
            Assert.That(containers, Is.EquivalentTo(new[] { "sim-pki", "sim-collateral", "broker", "simulator" }));
            Assert.That((string?)BrokerSettings(objects)["Storage"]?["Provider"] ?? "sqlite", Is.EqualTo("sqlite"));
        });
    }

    [Test]
    public void The_example_key_release_policy_is_a_policy_document_the_broker_accepts()
    {
        var crs = Rendered.File("examples/keyreleasepolicy.yaml");
        var cr = crs.Single(o => o.Kind() == "KeyReleasePolicy");
        var spec = (JsonObject)cr["spec"]!.DeepClone();
        var keyId = (string?)spec["keyId"];
        spec.Remove("keyId");
        spec["name"] ??= cr.Name();
        spec["version"] ??= 1;
        var policy = ReleasePolicy.Parse(spec.ToJsonString());
        Assert.Multiple(() =>
        {
            Assert.That(keyId, Does.StartWith((string?)cr["metadata"]?["namespace"] + ":"), "a policy governs only its namespace's keys");
            Assert.That(policy.Name, Is.EqualTo("llama-3-8b-instruct"));
        });
    }

    [Test]
    public void The_crd_schema_names_exactly_the_policy_document_fields_plus_key_id()
    {
        var crd = Rendered.Kustomize("crds").Single(o => o.Kind() == "CustomResourceDefinition");
        var version = (crd["spec"]!["versions"] as JsonArray)!.OfType<JsonObject>().Single();
        var spec = version["schema"]!["openAPIV3Schema"]!["properties"]!["spec"]!;
        var fields = (spec["properties"] as JsonObject)!.Select(p => p.Key).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(spec["additionalProperties"]?.GetValue<bool>(), Is.False, "unknown fields must be refused as the policy parser refuses them");
            Assert.That(fields, Is.EquivalentTo(new[]
            {
                "keyId", "name", "version", "description", "explain", "tee", "allowDebug", "allowSimulated", "allowUncheckedCrl",
                "allowAzureAttestation", "maxCollateralAge", "reportData", "requester", "tdx", "snp", "expressions",
            }));
            Assert.That((string?)crd["spec"]!["scope"], Is.EqualTo("Namespaced"));
            Assert.That(version["subresources"]?["status"], Is.Not.Null);
        });

        // Each field the CRD admits is one the policy parser knows: a document using all top-level fields parses.
        var probe = new JsonObject
        {
            ["name"] = "probe", ["version"] = 1, ["description"] = "d", ["explain"] = true, ["tee"] = new JsonArray("tdx"),
            ["allowDebug"] = false, ["allowSimulated"] = false, ["allowUncheckedCrl"] = false, ["allowAzureAttestation"] = false, ["maxCollateralAge"] = "30d",
            ["reportData"] = new JsonArray(new string('0', 128)), ["requester"] = new JsonObject { ["namespaces"] = new JsonArray("ml-prod") },
            ["tdx"] = new JsonObject { ["mrTd"] = new JsonArray(new string('a', 96)) },
            ["expressions"] = new JsonArray(new JsonObject { ["name"] = "e", ["expr"] = "true" }),
        };
        Assert.DoesNotThrow(() => ReleasePolicy.Parse(probe.ToJsonString()));
    }

    private static JsonObject BrokerSettings(IReadOnlyList<JsonObject> objects)
    {
        var cm = objects.Single(o => o.Kind() == "ConfigMap" && o.Name().StartsWith("attestbroker-config", StringComparison.Ordinal));
        var text = (string?)cm["data"]?["appsettings.json"] ?? throw new InvalidDataException("no appsettings.json in " + cm.Describe());
        return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip })?["Broker"] as JsonObject ?? [];
    }

    private static bool LooksSecret(string name, string value) =>
        SecretName().IsMatch(name) || value.Contains("PRIVATE KEY", StringComparison.Ordinal) || PasswordInConnectionString().IsMatch(value) || LongBase64().IsMatch(value);

    [GeneratedRegex("(?i)(password|secret|token|kek|private|connectionstring)")]
    private static partial Regex SecretName();

    [GeneratedRegex("(?i)(password|pwd)\\s*=")]
    private static partial Regex PasswordInConnectionString();

    [GeneratedRegex("[A-Za-z0-9+/]{40,}={0,2}")]
    private static partial Regex LongBase64();
}
