using AttestBroker.Models.Benchmarking;
using NUnit.Framework;

namespace AttestBroker.Models.Tests;

/// <summary>
/// The bench's harness on a small model: the settling before each contender, the per-run ratios, the floor lines and the
/// clean-up. Our decrypt is stood in for by a shell that reads the key from standard input and creates the output
/// directory, so the test needs neither the command-line build nor `age` (skipped by the bench when absent); the
/// in-process decryption and the rate measurements are the real ones.
/// </summary>
[TestFixture]
public sealed class The_model_bench_settles_the_machine_before_every_contender_and_reports_each_run
{
    [Test]
    public async Task A_small_bench_prints_each_runs_ratios_and_both_floors_and_leaves_nothing_behind()
    {
        if (!Directory.Exists("/dev/shm") || !MemoryVolume.IsMemoryBacked("/dev/shm"))
        {
            Assert.Ignore("/dev/shm is missing or not memory-backed on this machine: the bench needs a tmpfs");
        }

        var cipherDirectory = Directory.CreateTempSubdirectory("ab-bench-test-").FullName;
        var invocations = Path.Combine(cipherDirectory, "..", Path.GetFileName(cipherDirectory) + ".invocations");
        var before = Directory.GetDirectories("/dev/shm", "attestbroker-bench-*");
        var lines = new List<string>();
        try
        {
            var options = new ModelBenchOptions
            {
                Size = (3 << 20) + 5,
                Runs = 2,
                CipherDirectory = cipherDirectory,
                DecryptorExecutable = "/bin/sh",

                // $1 is the log of invocations; the bench appends model decrypt ENC --key-file - --out OUT, so OUT
                // is $8. It lives for 50 ms, so that its resident set is sampled at least once.
                DecryptorPrefixArguments = ["-c", "cat > /dev/null && mkdir -p \"$8\" && echo \"$8\" >> \"$1\" && sleep 0.05", "sh", invocations],
            };

            var report = await ModelBench.RunAsync(options, lines.Add);

            Assert.Multiple(() =>
            {
                Assert.That(lines.Count(l => l.StartsWith("run ", StringComparison.Ordinal)), Is.EqualTo(2), string.Join('\n', lines));
                Assert.That(lines.Where(l => l.StartsWith("run ", StringComparison.Ordinal)), Has.All.Contains("this run: ours / cat "));
                Assert.That(lines, Has.Some.Contains("floor on ").And.Contains(" + (H "));
                Assert.That(lines, Has.Some.StartsWith("  the same with no start-up at all: ours / cat >= "));
                Assert.That(report.FloorWall, Is.GreaterThan(TimeSpan.Zero));

                // The stand-in's own resident set (a shell: a few MiB), not the test host's, which getrusage's
                // ru_maxrss reports for a child that .NET started with vfork.
                Assert.That(report.OursPeakRssBytes, Is.InRange(1L, 16L << 20));
                Assert.That(lines, Has.Some.StartsWith("  peak RSS of our decrypt = ").And.Contains("VmHWM").And.Contains("untimed"));

                // The model is decrypted once before the timed runs, once per timed run, and once after them; the peak
                // RSS comes from the first and the last, so that no timed run shares its cores with the /proc reader.
                var outputs = File.ReadAllLines(invocations).Select(Path.GetFileName).ToList();
                Assert.That(outputs.Count(o => o == "out-ours"), Is.EqualTo(options.Runs + 2), string.Join('\n', outputs));
                Assert.That(outputs.Count(o => o == "out-1"), Is.EqualTo(options.Runs), "one start-up run per timed run");
                Assert.That(report.Cat, Is.GreaterThan(TimeSpan.Zero));
                Assert.That(Directory.GetFileSystemEntries(cipherDirectory), Is.Empty, "the bench deletes its ciphertexts");
            });
        }
        finally
        {
            Directory.Delete(cipherDirectory, recursive: true);
            File.Delete(invocations);
        }

        Assert.That(Directory.GetDirectories("/dev/shm", "attestbroker-bench-*"), Is.EquivalentTo(before), "the bench deletes its memory-backed directory, settling file included");
    }
}
