using System.Security.Cryptography;
using System.Text;
using CsCheck;

namespace AttestBroker.Storage.Tests;

/// <summary>Random single tamperings of a signed 12-row chain are always found, at the right row, as the right kind.</summary>
[TestFixture(Db.Sqlite)]
[TestFixture(Db.Postgres)]
public sealed class AuditTamperPropertyTests(Db db) : StorageTestBase(db)
{
    private const int Rows = 12;

    private enum Tamper
    {
        Edit,
        EditAndRehash,
        Delete,
        Swap,
    }

    [Test]
    public async Task Every_single_tampering_is_reported_at_its_row_with_its_kind()
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        for (int i = 1; i <= Rows; i++)
        {
            await Storage.Audit.AppendAsync(new AuditEvent("release", Start.AddSeconds(i), Actor: "w" + i, Decision: i % 3 == 0 ? "denied" : "granted", KeyId: "k" + i));
        }

        await Storage.Audit.SignHeadAsync(key);
        IReadOnlyList<AuditRecord> original = await Storage.Audit.ReadAsync(1, Rows);

        Gen.Select(Gen.Enum<Tamper>(), Gen.Int[1, Rows], Gen.Int[1, Rows]).Sample((tamper, a, b) =>
        {
            RunCase(tamper, a, b, original, key).GetAwaiter().GetResult();
        }, iter: 40, threads: 1);
    }

    private async Task RunCase(Tamper tamper, int a, int b, IReadOnlyList<AuditRecord> original, ECDsa key)
    {
        (long at, AuditBreakKind kind) expected;
        switch (tamper)
        {
            case Tamper.Edit:
                await TamperAsync("UPDATE audit_log SET event_json = @j WHERE seq = @s", ("j", original[a - 1].EventJson.Replace("release", "relea5e", StringComparison.Ordinal)), ("s", (long)a));
                expected = (a, AuditBreakKind.Edited);
                break;
            case Tamper.EditAndRehash:
                string json = original[a - 1].EventJson.Replace("release", "relea5e", StringComparison.Ordinal);
                byte[] hash = AuditChain.ComputeRowHash(a, original[a - 1].PreviousHash, Encoding.UTF8.GetBytes(json));
                await TamperAsync("UPDATE audit_log SET event_json = @j, hash = @h WHERE seq = @s", ("j", json), ("h", hash), ("s", (long)a));
                expected = (a, AuditBreakKind.Edited);
                break;
            case Tamper.Delete:
                await TamperAsync("DELETE FROM audit_log WHERE seq = @s", ("s", (long)a));
                expected = (a, AuditBreakKind.Deleted);
                break;
            default:
                if (a == b)
                {
                    return;
                }

                (int lo, int hi) = (Math.Min(a, b), Math.Max(a, b));
                await TamperAsync("UPDATE audit_log SET seq = -1 WHERE seq = @s", ("s", (long)lo));
                await TamperAsync("UPDATE audit_log SET seq = @n WHERE seq = @s", ("n", (long)lo), ("s", (long)hi));
                await TamperAsync("UPDATE audit_log SET seq = @n WHERE seq = -1", ("n", (long)hi));
                expected = (lo, AuditBreakKind.Reordered);
                break;
        }

        AuditVerification v = await Storage.Audit.VerifyAsync(key);
        Assert.That(v.FirstBreak, Is.Not.Null, $"{tamper} {a} {b}");
        Assert.That((v.FirstBreak!.Sequence, v.FirstBreak.Kind), Is.EqualTo(expected), $"{tamper} {a} {b}: {v.FirstBreak.Detail}");

        await TamperAsync("DELETE FROM audit_log");
        foreach (AuditRecord r in original)
        {
            await TamperAsync("INSERT INTO audit_log (seq, prev_hash, hash, kind, at_ms, event_json) VALUES (@s, @p, @h, @k, @t, @j)",
                ("s", r.Sequence), ("p", r.PreviousHash), ("h", r.Hash), ("k", r.Kind), ("t", r.Time.ToUnixTimeMilliseconds()), ("j", r.EventJson));
        }

        Assert.That((await Storage.Audit.VerifyAsync(key)).IsValid, Is.True, "restored");
    }
}
