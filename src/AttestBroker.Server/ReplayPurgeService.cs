using AttestBroker.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Server;

/// <summary>Deletes expired nonces from the replay store every few minutes (they can no longer be replayed: their challenge has expired).</summary>
internal sealed partial class ReplayPurgeService : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(5);
    private readonly IBrokerStorage _storage;
    private readonly ILogger<ReplayPurgeService> _log;

    public ReplayPurgeService(IBrokerStorage storage, ILogger<ReplayPurgeService> log)
    {
        _storage = storage;
        _log = log;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await _storage.Replay.PurgeExpiredAsync(stoppingToken);
            }
            catch (StorageException ex)
            {
                LogPurgeFailed(_log, ex.Error.ToString());
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "purging expired nonces failed ({Error}); will retry")]
    private static partial void LogPurgeFailed(ILogger logger, string error);
}
