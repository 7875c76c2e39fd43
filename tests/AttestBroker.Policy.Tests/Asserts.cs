using System.Text.Json.Nodes;
using NUnit.Framework;

namespace AttestBroker.Policy.Tests;

internal static class Asserts
{
    public static void Granted(PolicyDecision d)
    {
        Assert.That(d.Failures.Select(f => f.Code + " " + f.Rule + ": " + f.Message), Is.Empty);
        Assert.That(d.Granted, Is.True);
    }

    /// <summary>Denied with exactly one failure, of this code, rule and claim, with these expected and actual values (as JSON text).</summary>
    public static RuleFailure DeniedBy(PolicyDecision d, string code, string rule, string claim, string? expected = null, string? actual = null)
    {
        Assert.That(d.Granted, Is.False);
        Assert.That(d.Failures.Select(f => f.Code), Is.EqualTo(new[] { code }), "the failures: " + string.Join("; ", d.Failures.Select(f => f.Code + " " + f.Message)));
        var f = d.Failures[0];
        Assert.Multiple(() =>
        {
            Assert.That(f.Rule, Is.EqualTo(rule));
            Assert.That(f.Claim, Is.EqualTo(claim));
            if (expected is not null)
            {
                Assert.That(Json(f.Expected), Is.EqualTo(expected));
            }

            if (actual is not null)
            {
                Assert.That(Json(f.Actual), Is.EqualTo(actual));
            }

            Assert.That(f.Message, Is.Not.Empty);
        });
        return f;
    }

    public static string Json(JsonNode? n) => n?.ToJsonString() ?? "null";

    public static string Q(string s) => "\"" + s + "\"";
}
