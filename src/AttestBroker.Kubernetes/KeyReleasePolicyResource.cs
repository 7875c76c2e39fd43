using System.Text.Json;
using System.Text.Json.Nodes;

namespace AttestBroker.Kubernetes;

/// <summary>
/// One KeyReleasePolicy custom resource (keyreleasepolicies.attestbroker.io/v1) read from the API server, and the
/// scoping rules that turn its spec into a policy document: a policy in namespace NS may name only key ids
/// "NS:..." (':' because a broker key id has no '/'); <c>requester.namespaces</c> may only be [NS] and is set to [NS] when absent; <c>name</c> defaults to
/// metadata.name and <c>version</c> to metadata.generation.
/// </summary>
public sealed class KeyReleasePolicyResource
{
    public const string Group = "attestbroker.io";
    public const string Version = "v1";
    public const string Plural = "keyreleasepolicies";
    public const string Kind = "KeyReleasePolicy";

    private KeyReleasePolicyResource(string ns, string name, string uid, long generation, string? resourceVersion, JsonObject? spec, JsonObject? status)
    {
        Namespace = ns;
        Name = name;
        Uid = uid;
        Generation = generation;
        ResourceVersion = resourceVersion;
        Spec = spec;
        Status = status;
    }

    public string Namespace { get; }

    public string Name { get; }

    public string Uid { get; }

    public long Generation { get; }

    public string? ResourceVersion { get; }

    public JsonObject? Spec { get; }

    public JsonObject? Status { get; }

    /// <summary>"ns/name".</summary>
    public string Key => Namespace + "/" + Name;

    /// <summary>The audit author of what this resource sets: "k8s:ns/name".</summary>
    public string Author => "k8s:" + Key;

    /// <summary>spec.keyId as written (may be null or not a string).</summary>
    public string? KeyId => Spec?["keyId"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    /// <summary>Reads an object of a list or a watch event; null when it lacks namespace, name or uid.</summary>
    public static KeyReleasePolicyResource? From(JsonElement obj)
    {
        if (obj.ValueKind != JsonValueKind.Object || JsonNode.Parse(obj.GetRawText()) is not JsonObject node)
        {
            return null;
        }

        var meta = node["metadata"] as JsonObject;
        string? Meta(string name) => meta?[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        var ns = Meta("namespace");
        var name = Meta("name");
        var uid = Meta("uid");
        if (ns is null || name is null || uid is null)
        {
            return null;
        }

        var generation = meta?["generation"] is JsonValue g && g.TryGetValue<long>(out var gen) ? gen : 1;
        return new KeyReleasePolicyResource(ns, name, uid, generation, Meta("resourceVersion"), node["spec"] as JsonObject, node["status"] as JsonObject);
    }

    /// <summary>
    /// The key id and the policy document (JSON) for the broker, after the scoping rules. Throws
    /// <see cref="PolicyRejectedException"/> naming the field (spec.keyId, spec.requester.namespaces, ...).
    /// </summary>
    public (string KeyId, string DocumentJson) BuildDocument()
    {
        if (Spec is null)
        {
            throw new PolicyRejectedException("spec", "the resource has no spec");
        }

        var keyId = KeyId ?? throw new PolicyRejectedException("spec.keyId", "required: the model key this policy governs");
        var prefix = Namespace + ":";
        if (!keyId.StartsWith(prefix, StringComparison.Ordinal) || keyId.Length == prefix.Length)
        {
            throw new PolicyRejectedException("spec.keyId", $"a KeyReleasePolicy in namespace \"{Namespace}\" may only govern key ids that start with \"{prefix}\"; \"{keyId}\" does not");
        }

        var doc = (JsonObject)Spec.DeepClone();
        doc.Remove("keyId");
        doc["name"] ??= Name;
        doc["version"] ??= Generation;

        switch (doc["requester"])
        {
            case null:
                doc["requester"] = new JsonObject { ["namespaces"] = new JsonArray(Namespace) };
                break;
            case JsonObject requester:
                switch (requester["namespaces"])
                {
                    case null:
                        requester["namespaces"] = new JsonArray(Namespace);
                        break;
                    case JsonArray list when list.Count == 1 && list[0] is JsonValue v && v.TryGetValue<string>(out var only) && only == Namespace:
                        break;
                    default:
                        throw new PolicyRejectedException("spec.requester.namespaces", $"a KeyReleasePolicy in namespace \"{Namespace}\" may release only to requesters in \"{Namespace}\": leave the field out or set it to [{Namespace}]");
                }

                break;
            default:
                throw new PolicyRejectedException("spec.requester", "must be a mapping");
        }

        return (keyId, doc.ToJsonString());
    }

    /// <summary>The current Accepted condition in status, if any.</summary>
    internal JsonObject? AcceptedCondition =>
        (Status?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c["type"] is JsonValue t && t.TryGetValue<string>(out var s) && s == "Accepted");
}
