using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Testing;
using YamlDotNet.RepresentationModel;
using NUnit.Framework;

namespace AttestBroker.Deploy.Tests;

/// <summary>
/// Renders deploy/ with <c>kubectl kustomize</c> (kubectl runs offline here: no cluster is contacted) and turns each
/// object into a JsonObject, so that the tests read the manifests exactly as the API server would receive them.
/// </summary>
internal static class Rendered
{
    private static readonly Dictionary<string, IReadOnlyList<JsonObject>> Cache = new(StringComparer.Ordinal);

    public static string DeployDir => Path.Combine(TestPaths.RepoRoot, "deploy");

    /// <summary>The objects of <c>kubectl kustomize deploy/&lt;relative&gt;</c>; the test is ignored (with the reason) when kubectl is absent.</summary>
    public static IReadOnlyList<JsonObject> Kustomize(string relative)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(relative, out var objects))
            {
                objects = Parse(RunKubectl("kustomize", Path.Combine(DeployDir, relative)));
                Cache[relative] = objects;
            }

            return objects;
        }
    }

    /// <summary>Renders a kustomization outside the checkout that refers to deploy/ by absolute paths.</summary>
    public static IReadOnlyList<JsonObject> KustomizeOutside(string directory) =>
        Parse(RunKubectl("kustomize", "--load-restrictor", "LoadRestrictionsNone", directory));

    /// <summary>The objects of a plain manifest file under deploy/.</summary>
    public static IReadOnlyList<JsonObject> File(string relative) =>
        Parse(System.IO.File.ReadAllText(Path.Combine(DeployDir, relative)));

    public static IReadOnlyList<JsonObject> Parse(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents
            .Where(d => d.RootNode is YamlMappingNode)
            .Select(d => (JsonObject)ToJson(d.RootNode)!)
            .ToList();
    }

    public static string Kind(this JsonObject o) => (string?)o["kind"] ?? string.Empty;

    public static string Name(this JsonObject o) => (string?)o["metadata"]?["name"] ?? string.Empty;

    public static string Describe(this JsonObject o) => $"{o.Kind()}/{o.Name()}";

    /// <summary>The pod spec of a workload (Pod, Deployment, DaemonSet, StatefulSet, ReplicaSet, Job, CronJob), or null.</summary>
    public static JsonObject? PodSpec(this JsonObject o) => o.Kind() switch
    {
        "Pod" => o["spec"] as JsonObject,
        "Deployment" or "DaemonSet" or "StatefulSet" or "ReplicaSet" or "Job" => o["spec"]?["template"]?["spec"] as JsonObject,
        "CronJob" => o["spec"]?["jobTemplate"]?["spec"]?["template"]?["spec"] as JsonObject,
        _ => null,
    };

    /// <summary>The labels pods of a workload carry.</summary>
    public static JsonObject PodLabels(this JsonObject o) => (o.Kind() == "Pod"
        ? o["metadata"]?["labels"]
        : o.Kind() == "CronJob" ? o["spec"]?["jobTemplate"]?["spec"]?["template"]?["metadata"]?["labels"] : o["spec"]?["template"]?["metadata"]?["labels"]) as JsonObject ?? [];

    /// <summary>Every container of a pod spec, init containers included, with the list it came from.</summary>
    public static IEnumerable<(string List, JsonObject Container)> Containers(this JsonObject podSpec)
    {
        foreach (var list in new[] { "initContainers", "containers", "ephemeralContainers" })
        {
            if (podSpec[list] is JsonArray array)
            {
                foreach (var c in array.OfType<JsonObject>())
                {
                    yield return (list, c);
                }
            }
        }
    }

    private static string RunKubectl(params string[] args)
    {
        var kubectl = FindOnPath("kubectl");
        if (kubectl is null)
        {
            Assert.Ignore("kubectl is not on PATH: the deploy/ manifests cannot be rendered here (install kubectl; .ci/run requires it)");
        }

        var start = new ProcessStartInfo(kubectl!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("kubectl did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(true);
            Assert.Fail("kubectl " + string.Join(' ', args) + " did not finish within 120 s");
        }

        Assert.That(process.ExitCode, Is.Zero, () => "kubectl " + string.Join(' ', args) + " failed: " + stderr.Result);
        return stdout.Result;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name))
            .FirstOrDefault(System.IO.File.Exists);

    private static JsonNode? ToJson(YamlNode node)
    {
        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JsonObject();
                foreach (var (k, v) in map.Children)
                {
                    obj[((YamlScalarNode)k).Value!] = ToJson(v);
                }

                return obj;
            case YamlSequenceNode seq:
                var arr = new JsonArray();
                foreach (var item in seq.Children)
                {
                    arr.Add(ToJson(item));
                }

                return arr;
            case YamlScalarNode scalar:
                return Scalar(scalar);
            default:
                throw new InvalidDataException("unexpected YAML node " + node.NodeType);
        }
    }

    // kubectl emits YAML 1.2-style plain scalars: quoted strings stay strings; plain true/false/null/integers are typed.
    private static JsonNode? Scalar(YamlScalarNode s)
    {
        var v = s.Value ?? string.Empty;
        if (s.Style is YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted or YamlDotNet.Core.ScalarStyle.Literal or YamlDotNet.Core.ScalarStyle.Folded)
        {
            return JsonValue.Create(v);
        }

        return v switch
        {
            "true" => JsonValue.Create(true),
            "false" => JsonValue.Create(false),
            "null" or "~" or "" => null,
            _ when long.TryParse(v, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var n) => JsonValue.Create(n),
            _ => JsonValue.Create(v),
        };
    }
}
