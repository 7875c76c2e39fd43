using System.Text.Json.Nodes;
using NUnit.Framework;

namespace AttestBroker.Deploy.Tests;

/// <summary>Network isolation and least privilege in the rendered overlays.</summary>
[TestFixture]
public sealed class NetworkAndRbacTests
{
    /// <summary>Everything a ClusterRole or Role in deploy/ may grant: (role, apiGroup, resource) -> verbs.</summary>
    private static readonly Dictionary<(string Role, string Group, string Resource), string[]> Allowed = new()
    {
        [("attestbroker-broker", "authentication.k8s.io", "tokenreviews")] = ["create"],
        [("attestbroker-broker", "attestbroker.io", "keyreleasepolicies")] = ["get", "list", "watch"],
        [("attestbroker-broker", "attestbroker.io", "keyreleasepolicies/status")] = ["get", "patch", "update"],
        [("attestbroker-key-admin", "attestbroker.io", "keyreleasepolicies")] = ["get", "list", "watch", "create", "update", "patch", "delete"],
        [("attestbroker-key-admin", "attestbroker.io", "keyreleasepolicies/status")] = ["get"],
        [("attestbroker-auditor", "attestbroker.io", "keyreleasepolicies")] = ["get", "list", "watch"],
        [("attestbroker-auditor", "attestbroker.io", "keyreleasepolicies/status")] = ["get", "list", "watch"],
        [("attestbroker-quarantine", "", "pods")] = ["patch"],
        [("attestbroker-quarantine", "", "events")] = ["create"],
        [("attestbroker-quarantine", "events.k8s.io", "events")] = ["create"],
    };


    public static IEnumerable<string> Overlays() => PodSecurityTests.Overlays;

    [TestCaseSource(nameof(Overlays))]
    public void Every_pod_in_the_broker_namespace_is_covered_by_a_default_deny_policy(string overlay)
    {
        var objects = Rendered.Kustomize(overlay);
        var policies = objects.Where(o => o.Kind() == "NetworkPolicy").ToList();
        var deny = policies.SingleOrDefault(p => p.Name() == "default-deny");
        Assert.That(deny, Is.Not.Null, "no default-deny NetworkPolicy");
        Assert.Multiple(() =>
        {
            Assert.That(deny!["spec"]?["podSelector"] as JsonObject, Is.Empty, "default-deny must select every pod");
            Assert.That((deny["spec"]?["policyTypes"] as JsonArray)!.Select(n => (string?)n), Is.EquivalentTo(new[] { "Ingress", "Egress" }));
            Assert.That(deny["spec"]?["ingress"], Is.Null);
            Assert.That(deny["spec"]?["egress"], Is.Null);
        });

        foreach (var w in objects.Where(o => o.PodSpec() is not null))
        {
            var labels = w.PodLabels();
            var covering = policies.Where(p => Selects(p["spec"]?["podSelector"] as JsonObject, labels)).ToList();
            Assert.That(covering, Is.Not.Empty, w.Describe() + " is not selected by any NetworkPolicy");
        }
    }

    [TestCaseSource(nameof(Overlays))]
    public void Broker_ingress_admits_only_labelled_client_pods_on_its_port(string overlay)
    {
        var ingress = Rendered.Kustomize(overlay).Single(o => o.Kind() == "NetworkPolicy" && o.Name() == "broker-ingress");
        var rules = (ingress["spec"]!["ingress"] as JsonArray)!.OfType<JsonObject>().ToList();
        Assert.That(rules, Has.Count.EqualTo(1));
        var from = (rules[0]["from"] as JsonArray)!.OfType<JsonObject>().Single();
        Assert.Multiple(() =>
        {
            Assert.That((string?)from["podSelector"]?["matchLabels"]?["attestbroker.io/client"], Is.EqualTo("true"));
            Assert.That(from["ipBlock"], Is.Null);
            Assert.That((rules[0]["ports"] as JsonArray)!.Select(p => (long?)p!["port"]), Is.EqualTo(new long?[] { 8443 }));
        });
    }

    [TestCaseSource(nameof(Overlays))]
    public void Broker_egress_allows_dns_and_only_named_ports(string overlay)
    {
        var egress = Rendered.Kustomize(overlay).Where(o => o.Kind() == "NetworkPolicy" && ((o["spec"]?["policyTypes"] as JsonArray) ?? []).Any(t => (string?)t == "Egress") && o.Name() != "default-deny")
            .SelectMany(p => (p["spec"]?["egress"] as JsonArray ?? []).OfType<JsonObject>()).ToList();
        Assert.That(egress, Is.Not.Empty);
        foreach (var rule in egress)
        {
            var ports = (rule["ports"] as JsonArray ?? []).OfType<JsonObject>().Select(p => (long?)p["port"]).Distinct().ToList();
            Assert.That(ports, Is.Not.Empty, "an egress rule without ports allows every port: " + rule.ToJsonString());
            Assert.That(ports, Is.SubsetOf(new long?[] { 53, 443, 5432, 6443, 8200 }), rule.ToJsonString());
        }
    }

    public static IEnumerable<TestCaseData> RbacSources()
    {
        yield return new TestCaseData("overlays/dev", true).SetArgDisplayNames("overlays/dev");
        yield return new TestCaseData("overlays/production", true).SetArgDisplayNames("overlays/production");
        yield return new TestCaseData("components/quarantine/rbac.yaml", false).SetArgDisplayNames("components/quarantine");
    }

    [TestCaseSource(nameof(RbacSources))]
    public void No_role_grants_more_than_the_listed_rules(string path, bool kustomize)
    {
        var objects = kustomize ? Rendered.Kustomize(path) : Rendered.File(path);
        var problems = new List<string>();
        foreach (var role in objects.Where(o => o.Kind() is "ClusterRole" or "Role"))
        {
            Assert.That(role["aggregationRule"], Is.Null, role.Describe() + " aggregates other roles");
            foreach (var rule in (role["rules"] as JsonArray ?? []).OfType<JsonObject>())
            {
                if (rule["nonResourceURLs"] is not null || rule["resourceNames"] is not null)
                {
                    problems.Add($"{role.Describe()}: unexpected nonResourceURLs/resourceNames");
                }

                foreach (var group in Strings(rule["apiGroups"]))
                {
                    foreach (var resource in Strings(rule["resources"]))
                    {
                        if (!Allowed.TryGetValue((role.Name(), group, resource), out var verbs))
                        {
                            problems.Add($"{role.Describe()}: {group}/{resource} is not on the list");
                            continue;
                        }

                        var extra = Strings(rule["verbs"]).Except(verbs).ToList();
                        if (extra.Count > 0)
                        {
                            problems.Add($"{role.Describe()}: {group}/{resource} verbs {string.Join(',', extra)} are not on the list");
                        }
                    }
                }
            }
        }

        Assert.That(problems, Is.Empty, string.Join("; ", problems));
    }

    [TestCaseSource(nameof(Overlays))]
    public void Pod_patching_and_events_are_granted_only_by_the_quarantine_component(string overlay)
    {
        var roles = Rendered.Kustomize(overlay).Where(o => o.Kind() is "ClusterRole" or "Role");
        var grantsPods = roles.SelectMany(r => (r["rules"] as JsonArray ?? []).OfType<JsonObject>())
            .Where(rule => Strings(rule["resources"]).Any(x => x is "pods" or "events"));
        Assert.That(grantsPods, Is.Empty, "quarantine is off by default: no pods/events rights in " + overlay);
    }

    [Test]
    public void The_quarantine_component_renders_into_an_overlay_and_adds_only_its_role()
    {
        // An overlay a user would write, production plus quarantine, in a temporary folder outside the checkout.
        var dir = Directory.CreateTempSubdirectory("attestbroker-quarantine-").FullName;
        try
        {
            var deploy = Path.GetRelativePath(dir, Rendered.DeployDir).Replace('\\', '/');
            File.WriteAllText(Path.Combine(dir, "kustomization.yaml"), $"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [{deploy}/overlays/production]\ncomponents: [{deploy}/components/quarantine]\n");
            var objects = Rendered.KustomizeOutside(dir);
            Assert.That(objects.Where(o => o.Kind() == "ClusterRole").Select(o => o.Name()), Does.Contain("attestbroker-quarantine"));
            var env = (PodSecurityTests.BrokerContainer(objects)["env"] as JsonArray)!.OfType<JsonObject>();
            Assert.That(env.Any(e => (string?)e["name"] == "Broker__Quarantine__Enabled" && (string?)e["value"] == "true"), Is.True);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static IEnumerable<string> Strings(JsonNode? node) => (node as JsonArray ?? []).Select(n => (string?)n ?? string.Empty);

    private static bool Selects(JsonObject? selector, JsonObject labels)
    {
        if (selector is null)
        {
            return false;
        }

        foreach (var (k, v) in selector["matchLabels"] as JsonObject ?? [])
        {
            if ((string?)labels[k] != (string?)v)
            {
                return false;
            }
        }

        foreach (var expr in (selector["matchExpressions"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var key = (string?)expr["key"] ?? string.Empty;
            var values = Strings(expr["values"]).ToList();
            var has = labels.ContainsKey(key);
            var ok = (string?)expr["operator"] switch
            {
                "In" => has && values.Contains((string?)labels[key] ?? string.Empty),
                "NotIn" => !has || !values.Contains((string?)labels[key] ?? string.Empty),
                "Exists" => has,
                "DoesNotExist" => !has,
                _ => false,
            };
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }
}
