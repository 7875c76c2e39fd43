namespace AttestBroker.Storage.Tests;

[TestFixture(Db.Sqlite)]
[TestFixture(Db.Postgres)]
public sealed class ReplayStoreTests(Db db) : StorageTestBase(db)
{
    private DateTimeOffset Expiry => Start.AddMinutes(5);

    [Test]
    public async Task First_use_of_a_nonce_is_accepted_and_the_second_is_rejected()
    {
        Assert.That(await Storage.Replay.TryConsumeAsync("nonce-1", Expiry), Is.True);
        Assert.That(await Storage.Replay.TryConsumeAsync("nonce-1", Expiry), Is.False);
        Assert.That(await Storage.Replay.TryConsumeAsync("nonce-2", Expiry), Is.True);
    }

    [Test]
    public async Task Thirty_two_concurrent_uses_of_one_nonce_have_exactly_one_winner()
    {
        Task<bool>[] attempts = [.. Enumerable.Range(0, 32).Select(_ => Task.Run(() => Storage.Replay.TryConsumeAsync("contested", Expiry)))];
        bool[] results = await Task.WhenAll(attempts);
        Assert.That(results.Count(r => r), Is.EqualTo(1));
    }

    [Test]
    public async Task A_nonce_used_on_one_replica_is_rejected_on_another()
    {
        SqlStorage other = NewReplica();
        Assert.That(await Storage.Replay.TryConsumeAsync("shared", Expiry), Is.True);
        Assert.That(await other.Replay.TryConsumeAsync("shared", Expiry), Is.False);
    }

    [Test]
    public async Task Concurrent_uses_across_two_replicas_have_exactly_one_winner_per_nonce()
    {
        SqlStorage other = NewReplica();
        var tasks = new List<Task<bool>>();
        for (int n = 0; n < 8; n++)
        {
            string nonce = $"n{n}";
            for (int i = 0; i < 8; i++)
            {
                IReplayStore store = (i % 2 == 0 ? Storage : other).Replay;
                tasks.Add(Task.Run(() => store.TryConsumeAsync(nonce, Expiry)));
            }
        }

        bool[] results = await Task.WhenAll(tasks);
        Assert.That(results.Count(r => r), Is.EqualTo(8));
        for (int n = 0; n < 8; n++)
        {
            Assert.That(results.Skip(n * 8).Take(8).Count(r => r), Is.EqualTo(1), $"nonce n{n}");
        }
    }

    [Test]
    public async Task An_already_expired_nonce_is_rejected()
    {
        Assert.That(await Storage.Replay.TryConsumeAsync("late", Start), Is.False);
        Assert.That(await Storage.Replay.TryConsumeAsync("late", Start.AddSeconds(-1)), Is.False);
    }

    [Test]
    public async Task Purge_removes_only_expired_nonces_and_a_used_nonce_stays_rejected_until_it_expires()
    {
        Assert.That(await Storage.Replay.TryConsumeAsync("short", Start.AddMinutes(1)), Is.True);
        Assert.That(await Storage.Replay.TryConsumeAsync("long", Start.AddHours(1)), Is.True);
        Clock.Advance(TimeSpan.FromMinutes(2));

        Assert.That(await Storage.Replay.PurgeExpiredAsync(), Is.EqualTo(1));
        Assert.That(await Storage.Replay.TryConsumeAsync("long", Start.AddHours(1)), Is.False);
    }

    [Test]
    public void An_empty_nonce_id_is_rejected_with_an_argument_error()
    {
        Assert.ThrowsAsync<ArgumentException>(() => Storage.Replay.TryConsumeAsync("", Expiry));
        Assert.ThrowsAsync<ArgumentException>(() => Storage.Replay.TryConsumeAsync(new string('x', 600), Expiry));
    }
}
