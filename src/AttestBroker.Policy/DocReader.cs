using System.Globalization;

namespace AttestBroker.Policy;

/// <summary>Reads the fields of one mapping of a policy document; unknown fields are errors that name the allowed ones.</summary>
internal sealed class MapReader
{
    private readonly DocMap _map;
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);

    public MapReader(DocNode node, string path)
    {
        Path = path;
        _map = node as DocMap ?? throw new PolicyFormatException(path, "must be a mapping of fields, not " + node.KindName + node.Location);
    }

    public string Path { get; }

    public string FieldPath(string name) => PolicyPaths.Field(Path, name);

    /// <summary>The field's node, or null when absent (an explicit null counts as absent).</summary>
    public DocNode? Take(string name)
    {
        _known.Add(name);
        foreach (var (k, v) in _map.Entries)
        {
            if (k == name)
            {
                return v is DocScalar { Kind: ScalarKind.Null } ? null : v;
            }
        }

        return null;
    }

    public DocNode Require(string name) =>
        Take(name) ?? throw new PolicyFormatException(FieldPath(name), "is required");

    public void EnsureNoUnknownFields()
    {
        foreach (var (k, v) in _map.Entries)
        {
            if (!_known.Contains(k))
            {
                var allowed = string.Join(", ", _known.Order(StringComparer.Ordinal));
                throw new PolicyFormatException(FieldPath(k), $"unknown field{v.Location}; the fields here are: {allowed}");
            }
        }
    }
}

/// <summary>Typed reads of scalars and lists, each failing with the field's path.</summary>
internal static class Read
{
    public static string String(DocNode node, string path, int maxLength = 1024)
    {
        if (node is not DocScalar { Kind: ScalarKind.Plain or ScalarKind.String } s)
        {
            throw new PolicyFormatException(path, "must be a string, not " + node.KindName + node.Location);
        }

        if (s.Text.Length > maxLength)
        {
            throw new PolicyFormatException(path, $"is {s.Text.Length} characters long; at most {maxLength} are accepted{node.Location}");
        }

        return s.Text;
    }

    public static bool Bool(DocNode node, string path)
    {
        if (node is DocScalar { Kind: ScalarKind.Bool or ScalarKind.Plain, Text: "true" or "false" } s)
        {
            return s.Text == "true";
        }

        throw new PolicyFormatException(path, "must be true or false, not " + Describe(node) + node.Location);
    }

    public static long Integer(DocNode node, string path, long min, long max)
    {
        if (node is DocScalar { Kind: ScalarKind.Number or ScalarKind.Plain } s
            && s.Text.Length is > 0 and <= 20
            && s.Text.AsSpan().TrimStart('-').ContainsAnyExceptInRange('0', '9') == false
            && long.TryParse(s.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
        {
            if (v < min || v > max)
            {
                throw new PolicyFormatException(path, string.Create(CultureInfo.InvariantCulture, $"must be between {min} and {max}, not {v}{node.Location}"));
            }

            return v;
        }

        throw new PolicyFormatException(path, "must be a whole number, not " + Describe(node) + node.Location);
    }

    public static List<DocNode> List(DocNode node, string path, int maxItems = 256)
    {
        if (node is not DocList l)
        {
            throw new PolicyFormatException(path, "must be a list, not " + node.KindName + node.Location);
        }

        if (l.Items.Count > maxItems)
        {
            throw new PolicyFormatException(path, $"has {l.Items.Count} entries; at most {maxItems} are accepted{node.Location}");
        }

        return l.Items;
    }

    /// <summary>A non-empty list of hex values of exactly <paramref name="bytes"/> bytes each, lower-cased, without duplicates.</summary>
    public static IReadOnlyList<string> HexList(DocNode node, string path, int bytes)
    {
        var items = List(node, path);
        if (items.Count == 0)
        {
            throw new PolicyFormatException(path, "an empty list allows nothing; leave the field out for no constraint" + node.Location);
        }

        var result = new List<string>(items.Count);
        for (var i = 0; i < items.Count; i++)
        {
            var itemPath = PolicyPaths.Index(path, i);
            var hex = Hex(items[i], itemPath, bytes);
            if (result.Contains(hex))
            {
                throw new PolicyFormatException(itemPath, "repeats an earlier entry" + items[i].Location);
            }

            result.Add(hex);
        }

        return result;
    }

    public static string Hex(DocNode node, string path, int bytes)
    {
        var text = String(node, path, Math.Max(4 * bytes, 1024));
        if (text.Length != 2 * bytes || text.AsSpan().ContainsAnyExcept("0123456789abcdefABCDEF"))
        {
            throw new PolicyFormatException(path, $"must be {bytes} bytes as {2 * bytes} hex digits, not {text.Length} characters{(text.Length == 2 * bytes ? " with non-hex digits" : string.Empty)}{node.Location}");
        }

        return text.ToLowerInvariant();
    }

    /// <summary>A non-empty list of strings, each one of <paramref name="allowed"/> (or matching <paramref name="check"/>), without duplicates.</summary>
    public static IReadOnlyList<string> StringList(DocNode node, string path, Func<string, bool> check, string what, bool allowEmpty = false)
    {
        var items = List(node, path);
        if (items.Count == 0 && !allowEmpty)
        {
            throw new PolicyFormatException(path, "an empty list allows nothing; leave the field out for the default" + node.Location);
        }

        var result = new List<string>(items.Count);
        for (var i = 0; i < items.Count; i++)
        {
            var itemPath = PolicyPaths.Index(path, i);
            var s = String(items[i], itemPath, 256);
            if (!check(s))
            {
                throw new PolicyFormatException(itemPath, $"'{Clip(s)}' is not {what}{items[i].Location}");
            }

            if (result.Contains(s))
            {
                throw new PolicyFormatException(itemPath, "repeats an earlier entry" + items[i].Location);
            }

            result.Add(s);
        }

        return result;
    }

    public static string Clip(string s) => s.Length <= 64 ? s : s[..64] + "...";

    private static string Describe(DocNode node) => node is DocScalar s ? $"'{Clip(s.Text)}'" : node.KindName;
}
