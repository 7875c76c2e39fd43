using System.Security.Cryptography;

namespace AttestBroker.Storage.Tests;

[TestFixture(Db.Sqlite)]
[TestFixture(Db.Postgres)]
public sealed class AuditFaultTests(Db db) : StorageTestBase(db)
{
    [Test]
    public async Task Appends_cancelled_part_way_from_two_replicas_leave_one_valid_chain()
    {
        SqlStorage other = NewReplica();
        using var cts = new CancellationTokenSource();
        int completed = 0;
        Task[] appends = [.. Enumerable.Range(1, 60).Select(i => Task.Run(async () =>
        {
            try
            {
                await (i % 2 == 0 ? Storage : other).Audit.AppendAsync(new AuditEvent("release", Start.AddSeconds(i), Decision: "denied", Reasons: ["nonce_replayed"]), cts.Token);
                if (Interlocked.Increment(ref completed) == 20)
                {
                    await cts.CancelAsync();
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (StorageException e) when (e.InnerException is OperationCanceledException || e.Error == StorageError.Unavailable)
            {
            }
        }))];
        await Task.WhenAll(appends);

        AuditRecord? last = await Storage.Audit.GetLastAsync();
        AuditVerification v = await Storage.Audit.VerifyAsync();
        Assert.That(v.IsValid, Is.True, v.FirstBreak?.Detail);
        Assert.That(v.LastSequence, Is.EqualTo(last!.Sequence));
        Assert.That(last.Sequence, Is.GreaterThanOrEqualTo(20));

        // The chain keeps growing normally afterwards.
        AuditRecord next = await other.Audit.AppendAsync(new AuditEvent("policy.set", Start, Actor: "admin"));
        Assert.That(next.Sequence, Is.EqualTo(last.Sequence + 1));
        Assert.That((await Storage.Audit.VerifyAsync()).IsValid, Is.True);
    }

    [Test]
    public async Task The_head_signer_signs_only_when_the_chain_has_grown()
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await using var signer = new AuditHeadSigner(Storage.Audit, key, TimeSpan.FromMinutes(5), Clock);

        SignedAuditHead? empty = await signer.SignIfAdvancedAsync();
        Assert.That(empty?.Sequence, Is.Zero);
        Assert.That(await signer.SignIfAdvancedAsync(), Is.Null);

        await Storage.Audit.AppendAsync(new AuditEvent("key.create", Start, Actor: "admin", KeyId: "m1"));
        await Storage.Audit.AppendAsync(new AuditEvent("key.disable", Start, Actor: "admin", KeyId: "m1"));
        SignedAuditHead? grown = await signer.SignIfAdvancedAsync();

        Assert.That(grown?.Sequence, Is.EqualTo(2));
        Assert.That(await signer.SignIfAdvancedAsync(), Is.Null);
        Assert.That((await Storage.Audit.ReadHeadsAsync()).Count, Is.EqualTo(2));
    }
}
