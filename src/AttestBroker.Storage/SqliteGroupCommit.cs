using System.Data.Common;
using System.Threading.Channels;

namespace AttestBroker.Storage;

/// <summary>
/// Group commit for the SQLite writes on the broker's request path (replay-store inserts and audit appends). Each
/// SQLite commit with synchronous=FULL costs an fsync, and the database has one writer at a time, so committing
/// every write alone caps the broker at about one write per fsync. Here one writer loop takes every write that is
/// waiting, runs them in order inside one BEGIN IMMEDIATE transaction (each under its own savepoint, so one failing
/// write does not undo the others), commits once, and only then completes each caller: a caller still learns of its
/// write only after it is durable, exactly as before, and the audit chain is appended in the same order.
/// </summary>
internal sealed class SqliteGroupCommit : IAsyncDisposable
{
    /// <summary>Most writes in one transaction (bounds the time the write lock is held).</summary>
    public const int MaxBatch = 256;

    private readonly Func<CancellationToken, Task<DbConnection>> _open;
    private readonly Func<DbConnection, CancellationToken, Task<DbTransaction>> _begin;
    private readonly Channel<PendingWrite> _queue = Channel.CreateUnbounded<PendingWrite>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lock _startLock = new();
    private Task? _loop;

    public SqliteGroupCommit(Func<CancellationToken, Task<DbConnection>> open, Func<DbConnection, CancellationToken, Task<DbTransaction>> begin)
    {
        _open = open;
        _begin = begin;
    }

    /// <summary>Queues <paramref name="write"/> (run on the writer's connection and transaction) and completes after the commit that holds it.</summary>
    public Task<T> RunAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var pending = new PendingWrite<T>(write, cancellationToken);
        EnsureStarted();
        if (!_queue.Writer.TryWrite(pending))
        {
            throw new ObjectDisposedException(nameof(SqliteStorage));
        }

        return pending.Completion.Task;
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        Task? loop;
        lock (_startLock)
        {
            loop = _loop;
        }

        if (loop is not null)
        {
            await loop.ConfigureAwait(false);
        }
    }

    private void EnsureStarted()
    {
        if (_loop is not null)
        {
            return;
        }

        lock (_startLock)
        {
            _loop ??= Task.Run(LoopAsync);
        }
    }

    private async Task LoopAsync()
    {
        var batch = new List<PendingWrite>(MaxBatch);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var item))
            {
                // A caller that gave up before its write started is not written.
                if (item.CancellationToken.IsCancellationRequested)
                {
                    item.Cancel();
                }
                else
                {
                    batch.Add(item);
                }
            }

            if (batch.Count > 0)
            {
                await CommitAsync(batch).ConfigureAwait(false);
            }
        }
    }

    private async Task CommitAsync(List<PendingWrite> batch)
    {
        try
        {
            await using DbConnection c = await _open(CancellationToken.None).ConfigureAwait(false);
            await using DbTransaction tx = await _begin(c, CancellationToken.None).ConfigureAwait(false);
            for (var i = 0; i < batch.Count; i++)
            {
                await SqlStorage.ExecAsync(c, tx, "SAVEPOINT w", CancellationToken.None).ConfigureAwait(false);
                if (await batch[i].RunAsync(c, tx).ConfigureAwait(false))
                {
                    await SqlStorage.ExecAsync(c, tx, "RELEASE w", CancellationToken.None).ConfigureAwait(false);
                }
                else
                {
                    await SqlStorage.ExecAsync(c, tx, "ROLLBACK TO w", CancellationToken.None).ConfigureAwait(false);
                    await SqlStorage.ExecAsync(c, tx, "RELEASE w", CancellationToken.None).ConfigureAwait(false);
                }
            }

            await tx.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The writer loop must outlive any failure: every waiting caller gets the error instead of waiting forever.
        catch (Exception e)
#pragma warning restore CA1031
        {
            // Nothing of this batch is durable: every caller still waiting learns it failed.
            foreach (var item in batch)
            {
                item.Fail(e);
            }

            return;
        }

        foreach (var item in batch)
        {
            item.Complete();
        }
    }

    private abstract class PendingWrite
    {
        protected PendingWrite(CancellationToken cancellationToken) => CancellationToken = cancellationToken;

        public CancellationToken CancellationToken { get; }

        /// <summary>Runs the write; false when it failed (its savepoint is rolled back and its caller gets the error after the commit).</summary>
        public abstract Task<bool> RunAsync(DbConnection c, DbTransaction tx);

        public abstract void Complete();

        public abstract void Fail(Exception e);

        public abstract void Cancel();
    }

    private sealed class PendingWrite<T> : PendingWrite
    {
        private readonly Func<DbConnection, DbTransaction, Task<T>> _write;
        private T? _result;
        private Exception? _error;

        public PendingWrite(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken)
            : base(cancellationToken) => _write = write;

        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async Task<bool> RunAsync(DbConnection c, DbTransaction tx)
        {
            try
            {
                _result = await _write(c, tx).ConfigureAwait(false);
                return true;
            }
            catch (Exception e) when (e is DbException or StorageException)
            {
                _error = e;
                return false;
            }
        }

        public override void Complete()
        {
            if (_error is not null)
            {
                Completion.TrySetException(_error);
            }
            else
            {
                Completion.TrySetResult(_result!);
            }
        }

        public override void Fail(Exception e) => Completion.TrySetException(_error ?? e);

        public override void Cancel() => Completion.TrySetCanceled(CancellationToken);
    }
}
