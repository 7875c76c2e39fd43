using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Protocol;
using AttestBroker.Server.Tests;

namespace AttestBroker.Replicas.Tests;

/// <summary>What a simulated pod asks for and what it must get.</summary>
internal enum PodKind
{
    /// <summary>TDX evidence, a key whose policy grants: 200 with the key.</summary>
    TdxGranted,

    /// <summary>SEV-SNP evidence, a key whose policy grants: 200 with the key.</summary>
    SnpGranted,

    /// <summary>TDX evidence, a key whose policy pins another MRTD: 403 policy-denied.</summary>
    TdxDenied,
}

/// <summary>The outcome of a whole run.</summary>
internal sealed class LoadResult
{
    public int Granted;
    public int Denied;
    public int Retries;
    public int Gave503;
    public int ConnectionErrors;
    public ConcurrentBag<string> Unexpected { get; } = [];
    public ConcurrentBag<double> AttestMilliseconds { get; } = [];
    public ConcurrentBag<double> PodMilliseconds { get; } = [];
    public ConcurrentBag<JsonNode> Problems503 { get; } = [];
    public TimeSpan Elapsed { get; set; }

    public string Summary(string name, int pods)
    {
        var attest = AttestMilliseconds.Order().ToArray();
        var pod = PodMilliseconds.Order().ToArray();
        return string.Create(CultureInfo.InvariantCulture,
            $"{name}: {pods} pods in {Elapsed.TotalSeconds:F1} s ({pods / Elapsed.TotalSeconds:F0} pods/s); granted {Granted}, denied {Denied}, retries {Retries} " +
            $"(503 {Gave503}, connection errors {ConnectionErrors}), unexpected {Unexpected.Count}; " +
            $"attest p50 {Percentile(attest, 50):F1} ms p99 {Percentile(attest, 99):F1} ms; whole pod (challenge + evidence + attest, with retries) p50 {Percentile(pod, 50):F1} ms p99 {Percentile(pod, 99):F1} ms");
    }

    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];
}

/// <summary>
/// Simulated pods against the cluster through a round-robin client: each pod makes its own P-256 key, asks one
/// replica for a challenge and sends the bound evidence to the next (the replicas share the MAC secret), and on a
/// 503 or a connection error starts over with a new challenge on the following replicas.
/// </summary>
internal static class LoadDriver
{
    public const int MaxAttempts = 200;

    public static PodKind KindOf(int pod) => (pod % 20) switch
    {
        0 => PodKind.TdxDenied,
        1 or 2 => PodKind.SnpGranted,
        _ => PodKind.TdxGranted,
    };

    public static async Task<LoadResult> RunAsync(ReplicaCluster cluster, int pods, int concurrency, Func<int, Task>? onPodDone = null, CancellationToken ct = default)
    {
        var result = new LoadResult();
        var done = 0;
        var sw = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, pods), new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = ct }, async (pod, token) =>
        {
            await RunPodAsync(cluster, pod, KindOf(pod), result, token);
            var n = Interlocked.Increment(ref done);
            if (onPodDone is not null)
            {
                await onPodDone(n);
            }
        });
        result.Elapsed = sw.Elapsed;
        return result;
    }

    private static async Task RunPodAsync(ReplicaCluster cluster, int pod, PodKind kind, LoadResult result, CancellationToken ct)
    {
        using var key = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(key);
        var tee = kind == PodKind.SnpGranted ? TeeKind.SevSnp : TeeKind.Tdx;
        var keyId = kind switch
        {
            PodKind.SnpGranted => ReplicaCluster.SnpKey,
            PodKind.TdxDenied => ReplicaCluster.DenyKey,
            _ => ReplicaCluster.GrantKey,
        };
        var podClock = Stopwatch.StartNew();
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            if (attempt > 0)
            {
                Interlocked.Increment(ref result.Retries);
                await Task.Delay(Math.Min(20 * attempt, 250), ct);
            }

            var first = cluster.Next();
            var second = cluster.Next();
            try
            {
                var challenge = await first.ChallengeAsync(tee, ct);
                if (challenge is null)
                {
                    result.Unexpected.Add($"pod {pod}: challenge refused by replica {first.Index}");
                    return;
                }

                var evidence = cluster.Env.Evidence(tee, challenge.Value.Nonce, jwk);
                var body = RunningBroker.AttestJson(challenge.Value.Challenge, evidence, jwk, keyId);
                var attestClock = Stopwatch.StartNew();
                var (status, response) = await second.PostAsync("/v1/attest", body, ct);
                attestClock.Stop();
                if (status == 503)
                {
                    Interlocked.Increment(ref result.Gave503);
                    result.Problems503.Add(response ?? new JsonObject());
                    continue;
                }

                result.AttestMilliseconds.Add(attestClock.Elapsed.TotalMilliseconds);
                var code = (string?)response?["code"];
                if (status == 200 && kind != PodKind.TdxDenied)
                {
                    var released = JweDecryptor.Decrypt((string)response!["keys"]![0]!["jwe"]!, key);
                    if (!released.AsSpan().SequenceEqual(ReplicaCluster.KeyBytes(keyId)))
                    {
                        result.Unexpected.Add($"pod {pod}: released bytes differ from the key");
                    }

                    Interlocked.Increment(ref result.Granted);
                }
                else if (status == 403 && kind == PodKind.TdxDenied && code == "policy-denied")
                {
                    Interlocked.Increment(ref result.Denied);
                }
                else
                {
                    result.Unexpected.Add($"pod {pod} ({kind}) on replica {second.Index}: {status} {response?.ToJsonString()}");
                }

                result.PodMilliseconds.Add(podClock.Elapsed.TotalMilliseconds);
                return;
            }
            catch (HttpRequestException)
            {
                Interlocked.Increment(ref result.ConnectionErrors);
            }
            catch (IOException)
            {
                Interlocked.Increment(ref result.ConnectionErrors);
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                Interlocked.Increment(ref result.ConnectionErrors);
            }
        }

        result.Unexpected.Add($"pod {pod}: no decision after {MaxAttempts} attempts");
    }
}
