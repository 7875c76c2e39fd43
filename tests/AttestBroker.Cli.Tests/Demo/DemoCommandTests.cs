using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Demo;

[TestFixture]
public sealed class Demo_runs_grant_and_both_denials_and_exits_0
{
    [Test]
    public void Demo_exits_0_and_names_the_granted_key_and_both_denial_codes()
    {
        var (exit, output, error) = DemoRunOnce.Result;
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.Zero, error);
            Assert.That(error, Is.Empty);
            Assert.That(output, Does.Contain("released model-llama (32 bytes"));
            Assert.That(output, Does.Contain("equal to the created key"));
            Assert.That(output, Does.Contain("pod B (debug TD): denied: debug_not_allowed"));
            Assert.That(output, Does.Contain("pod C (wrong MRTD): denied: measurement_mismatch"));
            Assert.That(output, Does.Contain("6. audit verify: 4 rows, chain intact"));
        });
    }

    [Test]
    public void Demo_prints_its_steps_in_order_starting_with_the_https_listener()
    {
        var lines = DemoRunOnce.Result.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Take(6).Select(l => l[..2]), Is.EqualTo(new[] { "1.", "2.", "3.", "4.", "5.", "6." }));
        Assert.That(lines[0], Does.StartWith("1. broker listening on https://127.0.0.1:"));
    }
}

[TestFixture]
public sealed class Demo_refuses_a_keep_directory_that_is_not_empty
{
    [Test]
    public async Task Demo_with_a_non_empty_keep_directory_exits_2_without_running()
    {
        var dir = Directory.CreateTempSubdirectory("ab-cli-demo-keep-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir, "something"), "x");
            var (exit, output, error) = await CliRunner.RunAsync("demo", "--keep", dir);
            Assert.That((exit, output), Is.EqualTo((2, string.Empty)));
            Assert.That(error, Does.Contain("not empty"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
