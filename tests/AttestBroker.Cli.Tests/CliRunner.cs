using System.Text.Json.Nodes;
using AttestBroker.Cli;

namespace AttestBroker.Cli.Tests;

/// <summary>Runs the real <c>attestbroker</c> (or <c>attestbroker-node</c>) command tree in-process and captures what it prints.</summary>
internal static class CliRunner
{
    public static Task<(int Exit, string Out, string Err)> RunAsync(params string[] args) => RunAsync(CliApp.RunAsync, args);

    /// <summary>The same through <c>attestbroker-node</c>'s command tree (<see cref="PodCliApp"/>).</summary>
    public static Task<(int Exit, string Out, string Err)> RunPodAsync(params string[] args) => RunAsync(PodCliApp.RunAsync, args);

    private static async Task<(int Exit, string Out, string Err)> RunAsync(Func<string[], TextWriter?, TextWriter?, Task<int>> run, string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await run(args, stdout, stderr).ConfigureAwait(false);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    /// <summary>The JSON objects printed one per line by <c>--json</c>.</summary>
    public static List<JsonObject> JsonLines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => JsonNode.Parse(l)!.AsObject())
            .ToList();

    public static List<string> ReasonCodes(JsonObject result) =>
        result["reasons"]!.AsArray().Select(r => (string)r!["code"]!).ToList();
}
