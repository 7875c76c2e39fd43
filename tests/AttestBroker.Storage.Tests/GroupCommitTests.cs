namespace AttestBroker.Storage.Tests;

/// <summary>
/// SQLite group commit: concurrent request-path writes (nonce inserts, audit appends) share transactions, yet each
/// caller learns its own outcome only after the commit, a failing write does not undo the others, and nothing is lost.
/// </summary>
[TestFixture(Db.Sqlite)]
public sealed class GroupCommitTests(Db db) : StorageTestBase(db)
{
    private DateTimeOffset Expiry => Start.AddMinutes(5);

    private static AuditEvent Event(int i, string kind = "release") => new(
        kind, Start.AddSeconds(i), Actor: "pod-" + i, Decision: "granted", Reasons: [], EvidenceDigest: null,
        ClaimsDigest: null, PolicyVersion: 1, KeyId: "k" + i, Details: new Dictionary<string, string>());

    [Test]
    public async Task Interleaved_concurrent_nonce_uses_and_appends_all_land_once_and_survive_reopening()
    {
        var consumes = Enumerable.Range(0, 150).Select(i => Task.Run(() => Storage.Replay.TryConsumeAsync("n" + (i % 100), Expiry))).ToArray();
        var appends = Enumerable.Range(1, 150).Select(i => Task.Run(() => Storage.Audit.AppendAsync(Event(i)))).ToArray();
        bool[] used = await Task.WhenAll(consumes);
        AuditRecord[] records = await Task.WhenAll(appends);
        await Storage.DisposeAsync();

        SqlStorage reopened = NewReplica();
        AuditVerification v = await reopened.Audit.VerifyAsync();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(used.Count(u => u), Is.EqualTo(100), "each of the 100 nonces is accepted exactly once");
            Assert.That(records.Select(r => r.Sequence).Order(), Is.EqualTo(Enumerable.Range(1, 150).Select(i => (long)i)));
            Assert.That(v.IsValid, Is.True, v.FirstBreak?.Detail);
            Assert.That(v.LastSequence, Is.EqualTo(150));
            Assert.That(await reopened.Replay.TryConsumeAsync("n7", Expiry), Is.False, "a used nonce stays used after reopening");
        }
    }

    [Test]
    public async Task A_write_that_fails_inside_a_batch_fails_alone_and_the_others_commit()
    {
        await TamperAsync("CREATE TRIGGER poison BEFORE INSERT ON audit_log WHEN NEW.kind = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END");
        var appends = Enumerable.Range(1, 60)
            .Select(i => Task.Run(async () =>
            {
                try
                {
                    await Storage.Audit.AppendAsync(Event(i, i % 10 == 0 ? "poison" : "release"));
                    return (string?)null;
                }
                catch (StorageException e)
                {
                    return e.Message;
                }
            }))
            .ToArray();
        string?[] errors = await Task.WhenAll(appends);

        AuditVerification v = await Storage.Audit.VerifyAsync();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(errors.Count(e => e is not null), Is.EqualTo(6), "only the six poisoned appends fail");
            Assert.That(errors.Where(e => e is not null), Has.All.Contains("poisoned row"));
            Assert.That(v.IsValid, Is.True, v.FirstBreak?.Detail);
            Assert.That(v.LastSequence, Is.EqualTo(54), "the 54 others form one unbroken chain");
        }
    }

    [Test]
    public async Task A_caller_cancelled_before_its_write_starts_gets_a_cancellation_and_nothing_is_written()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        Assert.That(async () => await Storage.Replay.TryConsumeAsync("never", Expiry, cancelled.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(await Storage.Replay.TryConsumeAsync("never", Expiry), Is.True, "the cancelled use did not record the nonce");
    }
}

/// <summary>SQLite connection settings hold on every connection the pool hands out, fresh or reused.</summary>
[TestFixture(Db.Sqlite)]
public sealed class SqliteConnectionSettingsTests(Db db) : StorageTestBase(db)
{
    [Test]
    public async Task A_pooled_connection_handed_out_again_still_has_busy_timeout_and_synchronous_full()
    {
        var storage = (SqliteStorage)Storage;
        object? firstHandle;
        await using (var first = (Microsoft.Data.Sqlite.SqliteConnection)await storage.OpenAsync(CancellationToken.None))
        {
            firstHandle = first.Handle;
        }

        await using var again = (Microsoft.Data.Sqlite.SqliteConnection)await storage.OpenAsync(CancellationToken.None);
        async Task<long> PragmaAsync(string name)
        {
            await using var cmd = again.CreateCommand();
            cmd.CommandText = "PRAGMA " + name;
            return (long)(await cmd.ExecuteScalarAsync())!;
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(again.Handle, Is.SameAs(firstHandle), "the pool handed out the same physical connection");
            Assert.That(await PragmaAsync("synchronous"), Is.EqualTo(2), "synchronous = FULL");
            Assert.That(await PragmaAsync("busy_timeout"), Is.EqualTo(30000));
        }
    }
}
