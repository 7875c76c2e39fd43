using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Storage.Tests;

[TestFixture(Db.Sqlite)]
[TestFixture(Db.Postgres)]
public sealed class AuditLogTests(Db db) : StorageTestBase(db)
{
    private static AuditEvent Release(int i, string decision = "granted") => new(
        "release", Start.AddSeconds(i), Actor: $"spiffe://cluster/ns/ai/sa/worker-{i % 3}", Decision: decision,
        Reasons: decision == "granted" ? [] : ["tcb_out_of_date"], EvidenceDigest: "sha256:" + new string('a', 64),
        ClaimsDigest: "sha256:" + new string('b', 64), PolicyVersion: 3, KeyId: "model-key-" + i,
        Details: new Dictionary<string, string> { ["tee"] = "tdx", ["node"] = "n" + i });

    private async Task AppendManyAsync(int count)
    {
        for (int i = 1; i <= count; i++)
        {
            await Storage.Audit.AppendAsync(Release(i));
        }
    }

    [Test]
    public async Task A_chain_of_many_appends_verifies()
    {
        await AppendManyAsync(150);
        AuditVerification v = await Storage.Audit.VerifyAsync();
        Assert.That(v.IsValid, Is.True, v.FirstBreak?.Detail);
        Assert.That(v.RowsChecked, Is.EqualTo(150));
        Assert.That(v.LastSequence, Is.EqualTo(150));
    }

    [Test]
    public async Task An_empty_log_verifies()
    {
        AuditVerification v = await Storage.Audit.VerifyAsync();
        Assert.That(v.IsValid, Is.True);
        Assert.That(v.LastSequence, Is.Zero);
    }

    [Test]
    public async Task Concurrent_appends_from_two_replicas_form_one_valid_chain()
    {
        SqlStorage other = NewReplica();
        IEnumerable<Task<AuditRecord>> appends = Enumerable.Range(1, 80)
            .Select(i => Task.Run(() => (i % 2 == 0 ? Storage : other).Audit.AppendAsync(Release(i))));
        AuditRecord[] records = await Task.WhenAll(appends);

        Assert.That(records.Select(r => r.Sequence).Order(), Is.EqualTo(Enumerable.Range(1, 80).Select(i => (long)i)));
        AuditVerification v = await other.Audit.VerifyAsync();
        Assert.That(v.IsValid, Is.True, v.FirstBreak?.Detail);
        Assert.That(v.LastSequence, Is.EqualTo(80));
    }

    [Test]
    public async Task An_edited_row_is_reported_as_edited_at_that_row()
    {
        await AppendManyAsync(10);
        string edited = (await Storage.Audit.ReadAsync(5, 1))[0].EventJson.Replace("granted", "denied", StringComparison.Ordinal);
        await TamperAsync("UPDATE audit_log SET event_json = @j WHERE seq = 5", ("j", edited));

        AuditBreak b = (await Storage.Audit.VerifyAsync()).FirstBreak!;
        Assert.That(b, Is.Not.Null);
        Assert.That(b.Kind, Is.EqualTo(AuditBreakKind.Edited));
        Assert.That(b.Sequence, Is.EqualTo(5));
    }

    [Test]
    public async Task An_edited_and_rehashed_row_is_reported_as_edited_at_that_row()
    {
        await AppendManyAsync(10);
        AuditRecord r5 = (await Storage.Audit.ReadAsync(5, 1))[0];
        string edited = r5.EventJson.Replace("granted", "denied", StringComparison.Ordinal);
        byte[] rehash = AuditChain.ComputeRowHash(5, r5.PreviousHash, Encoding.UTF8.GetBytes(edited));
        await TamperAsync("UPDATE audit_log SET event_json = @j, hash = @h WHERE seq = 5", ("j", edited), ("h", rehash));

        AuditBreak b = (await Storage.Audit.VerifyAsync()).FirstBreak!;
        Assert.That(b.Kind, Is.EqualTo(AuditBreakKind.Edited));
        Assert.That(b.Sequence, Is.EqualTo(5));
    }

    [Test]
    public async Task A_deleted_row_is_reported_as_deleted_at_its_sequence()
    {
        await AppendManyAsync(10);
        await TamperAsync("DELETE FROM audit_log WHERE seq = 4");

        AuditBreak b = (await Storage.Audit.VerifyAsync()).FirstBreak!;
        Assert.That(b.Kind, Is.EqualTo(AuditBreakKind.Deleted));
        Assert.That(b.Sequence, Is.EqualTo(4));
    }

    [Test]
    public async Task A_deleted_row_with_later_rows_renumbered_is_reported_as_deleted()
    {
        await AppendManyAsync(10);
        await TamperAsync("DELETE FROM audit_log WHERE seq = 4");
        for (int s = 5; s <= 10; s++)
        {
            await TamperAsync("UPDATE audit_log SET seq = @n WHERE seq = @o", ("n", (long)(s - 1)), ("o", (long)s));
        }

        AuditBreak b = (await Storage.Audit.VerifyAsync()).FirstBreak!;
        Assert.That(b.Kind, Is.EqualTo(AuditBreakKind.Deleted));
        Assert.That(b.Sequence, Is.EqualTo(4));
    }

    [Test]
    public async Task A_reordered_pair_is_reported_as_reordered()
    {
        await AppendManyAsync(10);
        await TamperAsync("UPDATE audit_log SET seq = -1 WHERE seq = 6");
        await TamperAsync("UPDATE audit_log SET seq = 6 WHERE seq = 7");
        await TamperAsync("UPDATE audit_log SET seq = 7 WHERE seq = -1");

        AuditBreak b = (await Storage.Audit.VerifyAsync()).FirstBreak!;
        Assert.That(b.Kind, Is.EqualTo(AuditBreakKind.Reordered));
        Assert.That(b.Sequence, Is.EqualTo(6));
    }

    [Test]
    public async Task Signed_heads_verify_with_the_signing_public_key()
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await Storage.Audit.SignHeadAsync(key);
        await AppendManyAsync(5);
        SignedAuditHead head = await Storage.Audit.SignHeadAsync(key);
        await AppendManyAsync(3);

        Assert.That(head.Sequence, Is.EqualTo(5));
        AuditVerification v = await Storage.Audit.VerifyAsync(PublicOnly(key));
        Assert.That(v.IsValid, Is.True, v.FirstBreak?.Detail);
        Assert.That(v.HeadsChecked, Is.EqualTo(2));
    }

    [Test]
    public async Task A_forged_head_signature_is_reported_as_head_signature_invalid()
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await AppendManyAsync(5);
        SignedAuditHead head = await Storage.Audit.SignHeadAsync(key);
        byte[] forged = (byte[])head.Signature.Clone();
        forged[10] ^= 0x01;
        await TamperAsync("UPDATE audit_heads SET signature = @s", ("s", forged));

        AuditBreak b = (await Storage.Audit.VerifyAsync(PublicOnly(key))).FirstBreak!;
        Assert.That(b.Kind, Is.EqualTo(AuditBreakKind.HeadSignatureInvalid));
        Assert.That(b.Sequence, Is.EqualTo(5));
    }

    [Test]
    public async Task Heads_signed_by_another_key_are_reported_as_head_signature_invalid()
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using ECDsa other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await AppendManyAsync(3);
        await Storage.Audit.SignHeadAsync(other);

        AuditBreak b = (await Storage.Audit.VerifyAsync(PublicOnly(key))).FirstBreak!;
        Assert.That(b.Kind, Is.EqualTo(AuditBreakKind.HeadSignatureInvalid));
    }

    [Test]
    public async Task A_chain_rewritten_consistently_after_a_signed_head_is_reported_as_edited()
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await AppendManyAsync(8);
        await Storage.Audit.SignHeadAsync(key);

        // Rewrite row 3 and re-hash every later row, as an attacker with write access could.
        IReadOnlyList<AuditRecord> rows = await Storage.Audit.ReadAsync(1, 100);
        byte[] prev = rows[1].Hash;
        for (int i = 2; i < rows.Count; i++)
        {
            string json = i == 2 ? rows[i].EventJson.Replace("granted", "denied", StringComparison.Ordinal) : rows[i].EventJson;
            byte[] h = AuditChain.ComputeRowHash(rows[i].Sequence, prev, Encoding.UTF8.GetBytes(json));
            await TamperAsync("UPDATE audit_log SET event_json = @j, prev_hash = @p, hash = @h WHERE seq = @s",
                ("j", json), ("p", prev), ("h", h), ("s", rows[i].Sequence));
            prev = h;
        }

        Assert.That((await Storage.Audit.VerifyAsync()).IsValid, Is.True, "without the head key the rewrite is self-consistent");
        AuditBreak b = (await Storage.Audit.VerifyAsync(PublicOnly(key))).FirstBreak!;
        Assert.That(b.Kind, Is.EqualTo(AuditBreakKind.Edited));
        Assert.That(b.Sequence, Is.EqualTo(8));
    }

    [Test]
    public async Task Rows_cut_off_the_end_after_a_signed_head_are_reported_as_deleted()
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await AppendManyAsync(6);
        await Storage.Audit.SignHeadAsync(key);
        await TamperAsync("DELETE FROM audit_log WHERE seq > 4");

        AuditBreak b = (await Storage.Audit.VerifyAsync(PublicOnly(key))).FirstBreak!;
        Assert.That(b.Kind, Is.EqualTo(AuditBreakKind.Deleted));
        Assert.That(b.Sequence, Is.EqualTo(5));
    }

    [Test]
    public void A_head_key_that_is_not_P256_is_refused()
    {
        using ECDsa p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        Assert.ThrowsAsync<ArgumentException>(() => Storage.Audit.SignHeadAsync(p384));
    }

    [Test]
    public async Task Export_writes_one_json_object_per_row_with_its_chain_hashes()
    {
        await AppendManyAsync(4);
        using var ms = new MemoryStream();
        long n = await Storage.Audit.ExportAsync(ms);

        string[] lines = Encoding.UTF8.GetString(ms.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(n, Is.EqualTo(4));
        Assert.That(lines, Has.Length.EqualTo(4));
        using JsonDocument third = JsonDocument.Parse(lines[2]);
        Assert.That(third.RootElement.GetProperty("seq").GetInt64(), Is.EqualTo(3));
        Assert.That(third.RootElement.GetProperty("hash").GetString(), Has.Length.EqualTo(64));
        Assert.That(third.RootElement.GetProperty("event").GetProperty("key_id").GetString(), Is.EqualTo("model-key-3"));
        Assert.That(third.RootElement.GetProperty("event").GetProperty("decision").GetString(), Is.EqualTo("granted"));
    }

    [Test]
    public async Task The_stored_event_json_is_canonical_and_its_hash_recomputes()
    {
        var a = new AuditEvent("key.disable", Start, Actor: "admin", Details: new Dictionary<string, string> { ["z"] = "1", ["a"] = "2" });
        AuditRecord r = await Storage.Audit.AppendAsync(a);

        Assert.That(r.EventJson, Is.EqualTo("{\"kind\":\"key.disable\",\"time\":\"2026-03-01T12:00:00.000Z\",\"actor\":\"admin\",\"details\":{\"a\":\"2\",\"z\":\"1\"}}"));
        Assert.That(r.Hash, Is.EqualTo(AuditChain.ComputeRowHash(1, new byte[32], Encoding.UTF8.GetBytes(r.EventJson))));
    }

    private static ECDsa PublicOnly(ECDsa key)
    {
        var pub = ECDsa.Create();
        pub.ImportSubjectPublicKeyInfo(key.ExportSubjectPublicKeyInfo(), out _);
        return pub;
    }
}
