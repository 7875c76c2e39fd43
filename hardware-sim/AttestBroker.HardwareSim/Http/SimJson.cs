using System.Text.Json.Serialization;

namespace AttestBroker.HardwareSim.Http;

/// <summary>POST /sim/v1/evidence body.</summary>
public sealed class EvidenceRequestDto
{
    [JsonPropertyName("tee")]
    public string? Tee { get; set; }

    [JsonPropertyName("platform")]
    public string? Platform { get; set; }

    [JsonPropertyName("report_data")]
    public string? ReportData { get; set; }

    [JsonPropertyName("product")]
    public string? Product { get; set; }

    [JsonPropertyName("quote_version")]
    public ushort? QuoteVersion { get; set; }

    [JsonPropertyName("signing_key")]
    public string? SigningKey { get; set; }

    [JsonPropertyName("faults")]
    public IReadOnlyList<string>? Faults { get; set; }
}

/// <summary>POST /sim/v1/control body: any member given changes that behaviour.</summary>
public sealed class ControlDto
{
    [JsonPropertyName("latency_ms")]
    public int? LatencyMs { get; set; }

    [JsonPropertyName("fail_429")]
    public int? Fail429 { get; set; }

    [JsonPropertyName("retry_after")]
    public int? RetryAfter { get; set; }

    [JsonPropertyName("fail_503")]
    public int? Fail503 { get; set; }

    [JsonPropertyName("stale")]
    public bool? Stale { get; set; }
}

[JsonSerializable(typeof(EvidenceRequestDto))]
[JsonSerializable(typeof(ControlDto))]
internal sealed partial class SimJsonContext : JsonSerializerContext
{
}
