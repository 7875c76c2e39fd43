using System.Globalization;
using System.Text;
using System.Text.Json;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Collateral;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim.Http;

/// <summary>How the simulated PCS/KDS misbehaves. Changeable at run time (POST /sim/v1/control).</summary>
public sealed class SimServerBehaviour
{
    /// <summary>Delay before every response.</summary>
    public TimeSpan Latency { get; set; }

    /// <summary>The next N collateral requests get HTTP 429 with Retry-After.</summary>
    public int Fail429 { get; set; }

    /// <summary>Retry-After seconds sent with 429.</summary>
    public int RetryAfterSeconds { get; set; } = 1;

    /// <summary>The next N collateral requests get HTTP 503.</summary>
    public int Fail503 { get; set; }

    /// <summary>Serve stale collateral (nextUpdate in the past).</summary>
    public bool Stale { get; set; }
}

/// <summary>A response of the simulated server, independent of any HTTP stack.</summary>
public sealed record SimHttpResponse(int Status, string ContentType, byte[] Body, IReadOnlyDictionary<string, string> Headers)
{
    public static SimHttpResponse Text(int status, string text) =>
        new(status, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes(text + "\n"), new Dictionary<string, string>());
}

/// <summary>
/// The simulator's server logic: Intel PCS v4 paths, AMD KDS paths and the virtual TEE (POST /sim/v1/evidence),
/// with settable latency, 429/503 and stale collateral. The CLI hosts it on Kestrel bound to 127.0.0.1; tests can
/// call <see cref="HandleAsync"/> directly.
/// </summary>
public sealed class SimHttpService
{
    private readonly SimPki _pki;
    private readonly TimeProvider _time;
    private readonly IReadOnlyDictionary<string, SimProfile> _profiles;
    private readonly HashSet<SimFault> _collateralFaults;
    private readonly Lock _gate = new();
    private (bool Stale, DateTimeOffset BuiltAt, CollateralBundle Bundle)? _cached;

    public SimHttpService(SimPki pki, IEnumerable<SimProfile> profiles, IEnumerable<SimFault> collateralFaults, SimServerBehaviour behaviour, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(profiles);
        ArgumentNullException.ThrowIfNull(collateralFaults);
        _pki = pki ?? throw new ArgumentNullException(nameof(pki));
        Behaviour = behaviour ?? throw new ArgumentNullException(nameof(behaviour));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        var map = new Dictionary<string, SimProfile>(StringComparer.OrdinalIgnoreCase) { ["default"] = SimProfile.Default() };
        foreach (var p in profiles)
        {
            map[p.Name] = p;
        }

        _profiles = map;
        _collateralFaults = [.. collateralFaults];
    }

    public SimServerBehaviour Behaviour { get; }

    public async Task<SimHttpResponse> HandleAsync(string method, string path, IReadOnlyDictionary<string, string> query, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(query);
        try
        {
            if (path.StartsWith("/sim/v1/", StringComparison.Ordinal))
            {
                return Simulator(method, path, body);
            }

            TimeSpan latency;
            SimHttpResponse? injected = null;
            lock (_gate)
            {
                latency = Behaviour.Latency;
                if (Behaviour.Fail429 > 0)
                {
                    Behaviour.Fail429--;
                    injected = new SimHttpResponse(429, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes("rate limited (simulated)\n"), new Dictionary<string, string> { ["Retry-After"] = Behaviour.RetryAfterSeconds.ToString(CultureInfo.InvariantCulture) });
                }
                else if (Behaviour.Fail503 > 0)
                {
                    Behaviour.Fail503--;
                    injected = SimHttpResponse.Text(503, "service unavailable (simulated)");
                }
            }

            if (latency > TimeSpan.Zero)
            {
                await Task.Delay(latency, _time, cancellationToken).ConfigureAwait(false);
            }

            if (injected is not null)
            {
                return injected;
            }

            if (!string.Equals(method, "GET", StringComparison.OrdinalIgnoreCase))
            {
                return SimHttpResponse.Text(405, "method not allowed");
            }

            return path.StartsWith("/sgx/", StringComparison.Ordinal) || path.StartsWith("/tdx/", StringComparison.Ordinal) || path == "/IntelSGXRootCA.der"
                ? Intel(path, query)
                : path.StartsWith("/vcek/", StringComparison.Ordinal) || path.StartsWith("/vlek/", StringComparison.Ordinal)
                    ? Amd(path, query)
                    : SimHttpResponse.Text(404, "not found");
        }
        catch (SimulatorException ex)
        {
            return SimHttpResponse.Text(400, ex.Message);
        }
    }

    /// <summary>The collateral being served; rebuilt when the stale setting changes or after an hour (signing it takes a while).</summary>
    private CollateralBundle Bundle()
    {
        var now = _time.GetUtcNow();
        var options = new EvidenceOptions();
        bool stale;
        lock (_gate)
        {
            stale = Behaviour.Stale;
            if (_cached is { } c && c.Stale == stale && now - c.BuiltAt < TimeSpan.FromHours(1) && now >= c.BuiltAt)
            {
                return c.Bundle;
            }

            foreach (var f in _collateralFaults)
            {
                options.Faults.Add(f);
            }

            if (stale)
            {
                options.Faults.Add(SimFault.ExpiredCollateral);
            }
        }

        var bundle = SimEvidence.Collateral(_pki, _profiles.Values.Where(p => p.Name != "default"), options, now);
        lock (_gate)
        {
            _cached = (stale, now, bundle);
        }

        return bundle;
    }

    private SimHttpResponse Intel(string path, IReadOnlyDictionary<string, string> query)
    {
        var bundle = Bundle();
        switch (path)
        {
            case "/tdx/certification/v4/tcb":
                {
                    var fmspc = query.GetValueOrDefault("fmspc") ?? string.Empty;
                    return bundle.TcbInfo.TryGetValue(fmspc, out var tcb)
                        ? Json(tcb.Body, "TCB-Info-Issuer-Chain", bundle.TcbInfoIssuerChain)
                        : SimHttpResponse.Text(404, $"no TCB Info for FMSPC '{fmspc}'");
                }

            case "/tdx/certification/v4/qe/identity":
                return bundle.QeIdentity is { } qe
                    ? Json(qe.Body, "SGX-Enclave-Identity-Issuer-Chain", bundle.QeIdentityIssuerChain)
                    : SimHttpResponse.Text(404, "no QE identity");
            case "/sgx/certification/v4/pckcrl":
                {
                    var ca = query.GetValueOrDefault("ca") ?? string.Empty;
                    if (!string.Equals(ca, "platform", StringComparison.OrdinalIgnoreCase))
                    {
                        return SimHttpResponse.Text(ca.Equals("processor", StringComparison.OrdinalIgnoreCase) ? 404 : 400, "the simulator issues PCK certificates from its Platform CA only (ca=platform)");
                    }

                    var der = !string.Equals(query.GetValueOrDefault("encoding"), "pem", StringComparison.OrdinalIgnoreCase);
                    var body = der ? bundle.PckCrl : Encoding.ASCII.GetBytes(System.Security.Cryptography.PemEncoding.WriteString("X509 CRL", bundle.PckCrl) + "\n");
                    return new SimHttpResponse(200, der ? "application/pkix-crl" : "application/x-pem-file", body, new Dictionary<string, string> { ["SGX-PCK-CRL-Issuer-Chain"] = Uri.EscapeDataString(bundle.PckCrlIssuerChain) });
                }

            case "/sgx/certification/v4/rootcacrl":
            case "/IntelSGXRootCA.der":
                return new SimHttpResponse(200, "application/pkix-crl", bundle.RootCaCrl, new Dictionary<string, string>());
            default:
                return SimHttpResponse.Text(404, "not found");
        }
    }

    private SimHttpResponse Amd(string path, IReadOnlyDictionary<string, string> query)
    {
        // /{vcek|vlek}/v1/{product}/{cert_chain|crl|hwid}
        var parts = path.Trim('/').Split('/');
        if (parts.Length != 4 || parts[1] != "v1" || !AmdProducts.TryParse(parts[2], out var product) || parts[2] != product.KdsName())
        {
            return SimHttpResponse.Text(404, "not found (KDS paths: /vcek/v1/{Milan|Genoa|Turin}/{hwid|cert_chain|crl}, /vlek/v1/{product}/{cert_chain|crl})");
        }

        var vlek = parts[0] == "vlek";
        var bundle = Bundle();
        if (!bundle.Amd.TryGetValue(product, out var amd))
        {
            return SimHttpResponse.Text(404, $"the PKI has no {product} chain");
        }

        switch (parts[3])
        {
            case "cert_chain":
                return new SimHttpResponse(200, "application/x-pem-file", Encoding.ASCII.GetBytes(vlek ? amd.AsvkArkPem : amd.AskArkPem), new Dictionary<string, string>());
            case "crl":
                return new SimHttpResponse(200, "application/pkix-crl", vlek ? amd.VlekCrl : amd.VcekCrl, new Dictionary<string, string>());
            default:
                if (vlek)
                {
                    return SimHttpResponse.Text(404, "VLEKs are not publicly fetchable; the host provides them");
                }

                return Vcek(product, parts[3], query);
        }
    }

    private SimHttpResponse Vcek(AmdProduct product, string hwidHex, IReadOnlyDictionary<string, string> query)
    {
        byte[] hwid;
        try
        {
            hwid = Convert.FromHexString(hwidHex);
        }
        catch (FormatException)
        {
            return SimHttpResponse.Text(400, "hwid is not hex");
        }

        if (hwid.Length != product.HwIdLength())
        {
            return SimHttpResponse.Text(400, $"hwid for {product} is {product.HwIdLength()} bytes");
        }

        byte Spl(string name)
        {
            if (!query.TryGetValue(name, out var v) || !byte.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var b))
            {
                throw new SimulatorException($"query parameter {name} is missing or not 0..255");
            }

            return b;
        }

        var tcb = new SnpTcb(Spl("blSPL"), Spl("teeSPL"), Spl("snpSPL"), Spl("ucodeSPL"), product == AmdProduct.Turin ? Spl("fmcSPL") : (byte)0);
        var chip = new byte[64];
        hwid.CopyTo(chip, 0);
        var vcek = _pki.IssueVcek(new SnpPlatform { Product = product, ChipId = chip, ReportedTcb = tcb });
        return new SimHttpResponse(200, "application/pkix-cert", vcek.Certificate.RawData, new Dictionary<string, string>());
    }

    private SimHttpResponse Simulator(string method, string path, ReadOnlyMemory<byte> body)
    {
        switch (path)
        {
            case "/sim/v1/faults" when method == "GET":
                return SimHttpResponse.Text(200, string.Join('\n', FaultCatalog.All.Select(f => f.ToLine())));
            case "/sim/v1/evidence" when method == "POST":
                return Evidence(body);
            case "/sim/v1/control" when method == "POST":
                return Control(body);
            default:
                return SimHttpResponse.Text(404, "not found (POST /sim/v1/evidence, POST /sim/v1/control, GET /sim/v1/faults)");
        }
    }

    private SimHttpResponse Evidence(ReadOnlyMemory<byte> body)
    {
        EvidenceRequestDto? dto;
        try
        {
            dto = JsonSerializer.Deserialize(body.Span, SimJsonContext.Default.EvidenceRequestDto);
        }
        catch (JsonException ex)
        {
            return SimHttpResponse.Text(400, "request is not valid JSON: " + ex.Message);
        }

        if (dto is null || !TeeKindNames.TryParse(dto.Tee, out var tee))
        {
            return SimHttpResponse.Text(400, "\"tee\" must be \"tdx\" or \"sev-snp\"");
        }

        var name = dto.Platform ?? "default";
        if (!_profiles.TryGetValue(name, out var profile))
        {
            return SimHttpResponse.Text(404, $"unknown platform '{name}' (known: {string.Join(", ", _profiles.Keys)})");
        }

        var options = new EvidenceOptions();
        if (dto.ReportData is { } rd)
        {
            try
            {
                options.ReportData = Convert.FromHexString(rd);
            }
            catch (FormatException)
            {
                return SimHttpResponse.Text(400, "\"report_data\" is not hex");
            }
        }

        if (dto.Product is { } prod)
        {
            options.Product = AmdProducts.Parse(prod);
        }

        if (dto.QuoteVersion is { } qv)
        {
            options.QuoteVersion = qv is 4 or 5 ? qv : throw new SimulatorException("\"quote_version\" must be 4 or 5");
        }

        if (dto.SigningKey is { } sk)
        {
            options.SigningKey = ProfileDocument.ParseSigningKey(sk);
        }

        foreach (var f in dto.Faults ?? [])
        {
            options.Faults.Add(FaultCatalog.Parse(f));
        }

        var evidence = SimEvidence.Create(_pki, profile, tee, options);
        return new SimHttpResponse(200, "application/octet-stream", evidence, new Dictionary<string, string>());
    }

    private SimHttpResponse Control(ReadOnlyMemory<byte> body)
    {
        ControlDto? dto;
        try
        {
            dto = JsonSerializer.Deserialize(body.Span, SimJsonContext.Default.ControlDto);
        }
        catch (JsonException ex)
        {
            return SimHttpResponse.Text(400, "request is not valid JSON: " + ex.Message);
        }

        if (dto is null)
        {
            return SimHttpResponse.Text(400, "empty control request");
        }

        lock (_gate)
        {
            if (dto.LatencyMs is { } ms)
            {
                Behaviour.Latency = TimeSpan.FromMilliseconds(Math.Max(0, ms));
            }

            if (dto.Fail429 is { } f429)
            {
                Behaviour.Fail429 = Math.Max(0, f429);
            }

            if (dto.RetryAfter is { } ra)
            {
                Behaviour.RetryAfterSeconds = Math.Max(0, ra);
            }

            if (dto.Fail503 is { } f503)
            {
                Behaviour.Fail503 = Math.Max(0, f503);
            }

            if (dto.Stale is { } stale)
            {
                Behaviour.Stale = stale;
            }
        }

        return SimHttpResponse.Text(200, "ok");
    }

    private static SimHttpResponse Json(byte[] body, string header, string chainPem) =>
        new(200, "application/json", body, new Dictionary<string, string> { [header] = Uri.EscapeDataString(chainPem) });
}
