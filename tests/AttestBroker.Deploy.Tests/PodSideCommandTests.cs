using System.Text.Json.Nodes;
using AttestBroker.Cli;
using NUnit.Framework;

namespace AttestBroker.Deploy.Tests;

/// <summary>
/// The pod-side image runs attestbroker-node (deploy/docker/node.Dockerfile's entrypoint): every container of the
/// examples that uses that image passes arguments its command tree accepts, and asks for a pod-side command.
/// </summary>
[TestFixture]
public sealed class Example_pod_side_containers_run_commands_attestbroker_node_accepts
{
    private const string Image = "attestbroker/attestbroker-node:";

    [TestCase("examples/confidential-pod.yaml")]
    [TestCase("examples/node-helper-daemonset.yaml")]
    public void Their_arguments_parse_without_errors(string example)
    {
        var containers = Rendered.File(example)
            .Select(o => o.PodSpec())
            .OfType<JsonObject>()
            .SelectMany(spec => spec.Containers())
            .Where(c => ((string?)c.Container["image"] ?? string.Empty).StartsWith(Image, StringComparison.Ordinal))
            .ToList();
        Assert.That(containers, Is.Not.Empty, $"{example} has no {Image}* container");
        foreach (var (_, container) in containers)
        {
            var args = (container["args"] as JsonArray ?? []).Select(a => (string)a!).ToArray();
            var parse = PodCliApp.BuildRoot().Parse(args);
            Assert.Multiple(() =>
            {
                Assert.That(parse.Errors.Select(e => e.Message), Is.Empty, $"{example}: container {(string?)container["name"]}: {string.Join(' ', args)}");
                Assert.That(parse.CommandResult.Command.Name, Is.AnyOf("fetch-model", "fetch-key", "decrypt"));
            });
        }
    }
}
