using System.Text.Json.Nodes;

namespace AttestBroker.Verification;

/// <summary>
/// Claims read from verified evidence, in a stable order. Bytes are lowercase hex, numbers are numbers
/// (docs/claims.md names every claim). Policies are evaluated over these.
/// </summary>
public sealed class ClaimSet
{
    private readonly List<KeyValuePair<string, JsonNode?>> _items = [];

    public int Count => _items.Count;

    public IEnumerable<string> Names => _items.Select(i => i.Key);

    public void Set(string name, ReadOnlySpan<byte> bytes) => Set(name, JsonValue.Create(Convert.ToHexStringLower(bytes)));

    public void Set(string name, string value) => Set(name, JsonValue.Create(value));

    public void Set(string name, long value) => Set(name, JsonValue.Create(value));

    public void Set(string name, ulong value) => Set(name, JsonValue.Create(value));

    public void Set(string name, bool value) => Set(name, JsonValue.Create(value));

    /// <summary>Sets (or replaces) a claim; the node is owned by the set from then on.</summary>
    public void Set(string name, JsonNode? value)
    {
        var i = _items.FindIndex(p => p.Key == name);
        if (i >= 0)
        {
            _items[i] = new(name, value);
        }
        else
        {
            _items.Add(new(name, value));
        }
    }

    public bool Contains(string name) => _items.Exists(p => p.Key == name);

    public JsonNode? this[string name] => _items.Find(p => p.Key == name).Value;

    public JsonObject ToJson()
    {
        var o = new JsonObject();
        foreach (var (k, v) in _items)
        {
            o[k] = v?.DeepClone();
        }

        return o;
    }
}
