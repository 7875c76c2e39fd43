using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.Keys;
using AttestBroker.Storage;
using AttestBroker.Verification.Tdx;

namespace AttestBroker.Server;

/// <summary>
/// What /readyz checks on every call (nothing cached but the external key backends' health, kept for a few seconds, so
/// readiness follows the backends both ways without a restart): the database answers, the keystore answers, every
/// configured key backend is healthy, and the configured TDX collateral (TCB Info and QE
/// Identity from Broker:CollateralPaths) is still inside its nextUpdate. Collateral fetched on demand from Intel PCS
/// / AMD KDS is checked per request instead (a verification that cannot get fresh collateral is a 503).
/// </summary>
public sealed class ReadinessProbe
{
    /// <summary>The id the keystore is asked about; no key needs to exist under it.</summary>
    public const string ProbeKeyId = "readyz-probe";

    private readonly IBrokerStorage _storage;
    private readonly IKeyBackend _keys;
    private readonly TimeProvider _time;
    private readonly DateTimeOffset? _tcbInfoNextUpdate;
    private readonly DateTimeOffset? _qeIdentityNextUpdate;
    private readonly bool _fetchCollateral;

    public ReadinessProbe(IBrokerStorage storage, IKeyBackend keys, BrokerOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _storage = storage;
        _keys = keys;
        _time = time;
        _fetchCollateral = options.FetchCollateral;
        if (options.CollateralPaths.Count > 0)
        {
            try
            {
                var collateral = TdxCollateralSource.FromPaths(options.CollateralPaths.ToList()).Collateral;
                _tcbInfoNextUpdate = Latest(collateral.TcbInfos);
                _qeIdentityNextUpdate = Latest(collateral.QeIdentities);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or FormatException)
            {
                // The verifiers read the same paths at start-up and would have refused them; nothing to report here.
            }
        }
    }

    /// <summary>How long one key backend's health check may take before it counts as unavailable.</summary>
    public static readonly TimeSpan BackendCheckTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The configured external key backends: each one's health (cached for HealthCacheSeconds) is listed under
    /// "key_backends", and an unhealthy one makes the broker not ready.
    /// </summary>
    public BrokerKeyBackends? KeyBackends { get; init; }

    /// <summary>Runs the checks; <c>Ready</c> is false when any fails, and <c>Checks</c> says which and why.</summary>
    public async Task<(bool Ready, JsonObject Checks)> CheckAsync(CancellationToken cancellationToken)
    {
        var checks = new JsonObject();
        var ready = true;
        try
        {
            await _storage.SchemaVersionAsync(cancellationToken);
            checks["database"] = "ok";
        }
        catch (StorageException ex)
        {
            checks["database"] = "unavailable (" + ex.Error + ")";
            ready = false;
        }

        try
        {
            await _keys.GetInfoAsync(ProbeKeyId, cancellationToken);
            checks["keystore"] = "ok";
        }
        catch (KeyStoreException ex)
        {
            checks["keystore"] = "unavailable (" + ex.Error + ")";
            ready = false;
        }
        catch (StorageException ex)
        {
            checks["keystore"] = "unavailable (" + ex.Error + ")";
            ready = false;
        }

        if (KeyBackends is { External.Count: > 0 } backends)
        {
            var states = new JsonObject();
            var types = backends.External.ToDictionary(e => e.Name, e => e.Type, StringComparer.Ordinal);
            foreach (var health in await backends.HealthAsync(BackendCheckTimeout, cancellationToken))
            {
                states[health.Backend] = new JsonObject
                {
                    ["type"] = types.GetValueOrDefault(health.Backend),
                    ["healthy"] = health.Healthy,
                    ["detail"] = health.Detail,
                };
                if (!health.Healthy)
                {
                    checks["key_backend:" + health.Backend] = "unavailable (" + health.Detail + ")";
                    ready = false;
                }
            }

            checks["key_backends"] = states;
        }

        var now = _time.GetUtcNow();
        if (_tcbInfoNextUpdate is null && _qeIdentityNextUpdate is null)
        {
            checks["collateral"] = _fetchCollateral ? "fetched on demand" : "no TDX collateral files configured";
        }
        else
        {
            var until = Min(_tcbInfoNextUpdate, _qeIdentityNextUpdate);
            if (until is { } u && u > now)
            {
                checks["collateral"] = "fresh until " + u.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            }
            else if (_fetchCollateral)
            {
                checks["collateral"] = "configured files stale or incomplete; fetched on demand";
            }
            else
            {
                checks["collateral"] = until is { } t
                    ? "stale since " + t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)
                    : "incomplete (TCB Info and QE Identity both needed)";
                ready = false;
            }
        }

        return (ready, checks);
    }

    private static DateTimeOffset? Min(DateTimeOffset? a, DateTimeOffset? b) => a is null || b is null ? null : (a < b ? a : b);

    private static DateTimeOffset? Latest(IEnumerable<SignedCollateralDocument> documents)
    {
        DateTimeOffset? latest = null;
        foreach (var d in documents)
        {
            try
            {
                using var doc = JsonDocument.Parse(d.SignedJson);
                if (doc.RootElement.ValueKind == JsonValueKind.Object
                    && doc.RootElement.TryGetProperty("nextUpdate", out var n)
                    && n.ValueKind == JsonValueKind.String
                    && DateTimeOffset.TryParse(n.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
                    && (latest is null || t > latest))
                {
                    latest = t;
                }
            }
            catch (JsonException)
            {
                // Not readable here: the verifier reports it when used.
            }
        }

        return latest;
    }
}
