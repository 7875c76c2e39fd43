using System.Text.Json.Nodes;
using NUnit.Framework;

namespace AttestBroker.Deploy.Tests;

/// <summary>
/// Every workload in every overlay and example meets the Pod Security Standard "restricted" (checked field by field,
/// as the admission controller does), plus what the broker's design asks beyond it: a read-only root filesystem and
/// resource requests and limits on every container.
/// </summary>
[TestFixture]
public sealed class PodSecurityTests
{
    public static readonly string[] Overlays = ["overlays/dev", "overlays/production"];

    public static readonly string[] Examples = ["examples/confidential-pod.yaml"];

    private static readonly HashSet<string> AllowedVolumeKinds = new(StringComparer.Ordinal)
    {
        "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
    };

    public static IEnumerable<TestCaseData> Workloads()
    {
        foreach (var overlay in Overlays)
        {
            yield return new TestCaseData(overlay, true).SetArgDisplayNames(overlay);
        }

        foreach (var example in Examples)
        {
            yield return new TestCaseData(example, false).SetArgDisplayNames(example);
        }
    }

    private static IReadOnlyList<JsonObject> Load(string path, bool kustomize) => kustomize ? Rendered.Kustomize(path) : Rendered.File(path);

    [TestCaseSource(nameof(Workloads))]
    public void Every_workload_meets_the_restricted_pod_security_standard(string path, bool kustomize)
    {
        var workloads = Load(path, kustomize).Where(o => o.PodSpec() is not null).ToList();
        Assert.That(workloads, Is.Not.Empty, path + " has no workload");
        var problems = workloads.SelectMany(RestrictedViolations).ToList();
        Assert.That(problems, Is.Empty, path + ": " + string.Join("; ", problems));
    }

    [TestCaseSource(nameof(Workloads))]
    public void Every_container_has_a_read_only_root_filesystem_and_requests_and_limits(string path, bool kustomize)
    {
        var problems = new List<string>();
        foreach (var w in Load(path, kustomize).Where(o => o.PodSpec() is not null))
        {
            foreach (var (_, c) in w.PodSpec()!.Containers())
            {
                var where = $"{w.Describe()} container {c["name"]}";
                if (c["securityContext"]?["readOnlyRootFilesystem"]?.GetValue<bool>() != true)
                {
                    problems.Add(where + ": readOnlyRootFilesystem is not true");
                }

                foreach (var part in new[] { "requests", "limits" })
                {
                    foreach (var resource in new[] { "cpu", "memory" })
                    {
                        if (c["resources"]?[part]?[resource] is null)
                        {
                            problems.Add($"{where}: no resources.{part}.{resource}");
                        }
                    }
                }
            }
        }

        Assert.That(problems, Is.Empty, string.Join("; ", problems));
    }

    [TestCaseSource(nameof(Overlays))]
    public void The_broker_namespace_enforces_the_restricted_standard(string overlay)
    {
        var ns = Rendered.Kustomize(overlay).Single(o => o.Kind() == "Namespace" && o.Name() == "attestbroker");
        Assert.That((string?)ns["metadata"]?["labels"]?["pod-security.kubernetes.io/enforce"], Is.EqualTo("restricted"));
    }

    [TestCaseSource(nameof(Overlays))]
    public void The_broker_has_liveness_and_readiness_probes_on_its_health_endpoints(string overlay)
    {
        var broker = BrokerContainer(Rendered.Kustomize(overlay));
        Assert.Multiple(() =>
        {
            Assert.That((string?)broker["livenessProbe"]?["httpGet"]?["path"], Is.EqualTo("/healthz"));
            Assert.That((string?)broker["readinessProbe"]?["httpGet"]?["path"], Is.EqualTo("/readyz"));
            Assert.That((string?)broker["readinessProbe"]?["httpGet"]?["scheme"], Is.EqualTo("HTTPS"));
        });
    }

    [Test]
    public void The_node_helper_daemonset_meets_restricted_apart_from_its_one_hostpath_onto_the_node_tmpfs()
    {
        var objects = Rendered.File("examples/node-helper-daemonset.yaml");
        var ds = objects.Single(o => o.Kind() == "DaemonSet");
        var hostPaths = (ds.PodSpec()!["volumes"] as JsonArray)!.OfType<JsonObject>().Where(v => v["hostPath"] is not null).ToList();
        var problems = RestrictedViolations(ds).Where(p => p != $"{ds.Describe()}: volume node-models of kind hostPath").ToList();
        var ns = objects.Single(o => o.Kind() == "Namespace");
        Assert.Multiple(() =>
        {
            Assert.That(problems, Is.Empty, string.Join("; ", problems));
            Assert.That(hostPaths.Select(v => (string?)v["hostPath"]?["path"]), Is.EqualTo(new[] { "/run/attestbroker/models" }));
            Assert.That((string?)ns["metadata"]?["labels"]?["pod-security.kubernetes.io/warn"], Is.EqualTo("restricted"));
            Assert.That(ds.PodSpec()!.Containers().All(c => c.Container["securityContext"]?["readOnlyRootFilesystem"]?.GetValue<bool>() == true), Is.True);
        });
    }

    internal static JsonObject BrokerContainer(IReadOnlyList<JsonObject> objects) =>
        objects.Single(o => o.Kind() == "Deployment" && o.Name() == "attestbroker").PodSpec()!.Containers()
            .Single(c => c.List == "containers" && (string?)c.Container["name"] == "broker").Container;

    /// <summary>The "restricted" profile's checks (https://kubernetes.io/docs/concepts/security/pod-security-standards/).</summary>
    internal static IEnumerable<string> RestrictedViolations(JsonObject workload)
    {
        var spec = workload.PodSpec()!;
        var who = workload.Describe();
        foreach (var host in new[] { "hostNetwork", "hostPID", "hostIPC" })
        {
            if (spec[host]?.GetValue<bool>() == true)
            {
                yield return $"{who}: {host}";
            }
        }

        foreach (var v in (spec["volumes"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var kinds = v.Select(p => p.Key).Where(k => k != "name").ToList();
            if (kinds.Any(k => !AllowedVolumeKinds.Contains(k)))
            {
                yield return $"{who}: volume {v["name"]} of kind {string.Join(',', kinds)}";
            }
        }

        var podContext = spec["securityContext"] as JsonObject ?? [];
        if (podContext["sysctls"] is JsonArray { Count: > 0 })
        {
            yield return who + ": sysctls";
        }

        foreach (var (list, c) in spec.Containers())
        {
            var where = $"{who} {list} {c["name"]}";
            var ctx = c["securityContext"] as JsonObject ?? [];
            if (ctx["privileged"]?.GetValue<bool>() == true)
            {
                yield return where + ": privileged";
            }

            if (ctx["allowPrivilegeEscalation"]?.GetValue<bool>() != false)
            {
                yield return where + ": allowPrivilegeEscalation is not false";
            }

            var nonRoot = ctx["runAsNonRoot"]?.GetValue<bool>() ?? podContext["runAsNonRoot"]?.GetValue<bool>();
            if (nonRoot != true)
            {
                yield return where + ": runAsNonRoot is not true";
            }

            var user = ctx["runAsUser"]?.GetValue<long>() ?? podContext["runAsUser"]?.GetValue<long>();
            if (user == 0)
            {
                yield return where + ": runAsUser 0";
            }

            var seccomp = (string?)(ctx["seccompProfile"]?["type"] ?? podContext["seccompProfile"]?["type"]);
            if (seccomp is not ("RuntimeDefault" or "Localhost"))
            {
                yield return where + ": seccompProfile is not RuntimeDefault or Localhost";
            }

            var drop = (ctx["capabilities"]?["drop"] as JsonArray ?? []).Select(n => (string?)n).ToList();
            if (!drop.Contains("ALL"))
            {
                yield return where + ": capabilities do not drop ALL";
            }

            var add = (ctx["capabilities"]?["add"] as JsonArray ?? []).Select(n => (string?)n).Where(a => a != "NET_BIND_SERVICE").ToList();
            if (add.Count > 0)
            {
                yield return where + ": adds capabilities " + string.Join(',', add);
            }

            if (c["ports"] is JsonArray ports && ports.OfType<JsonObject>().Any(p => p["hostPort"] is not null))
            {
                yield return where + ": hostPort";
            }
        }
    }
}
