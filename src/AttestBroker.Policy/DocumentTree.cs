using System.Globalization;
using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace AttestBroker.Policy;

/// <summary>How a scalar was written: plain YAML text is interpreted by the field that reads it; JSON keeps its type.</summary>
internal enum ScalarKind
{
    Plain,
    String,
    Number,
    Bool,
    Null,
}

/// <summary>A node of a policy document, read from YAML or JSON, before it is bound to the schema.</summary>
internal abstract class DocNode
{
    protected DocNode(string location) => Location = location;

    /// <summary>" (line L, column C)" or "" when unknown.</summary>
    public string Location { get; }

    public abstract string KindName { get; }
}

internal sealed class DocMap : DocNode
{
    public DocMap(string location)
        : base(location)
    {
    }

    public List<KeyValuePair<string, DocNode>> Entries { get; } = [];

    public override string KindName => "a mapping";
}

internal sealed class DocList : DocNode
{
    public DocList(string location)
        : base(location)
    {
    }

    public List<DocNode> Items { get; } = [];

    public override string KindName => "a list";
}

internal sealed class DocScalar : DocNode
{
    public DocScalar(string text, ScalarKind kind, string location)
        : base(location)
    {
        Text = text;
        Kind = kind;
    }

    public string Text { get; }

    public ScalarKind Kind { get; }

    public override string KindName => Kind switch
    {
        ScalarKind.String => "a string",
        ScalarKind.Number => "a number",
        ScalarKind.Bool => "a boolean",
        ScalarKind.Null => "null",
        _ => "a scalar",
    };
}

/// <summary>
/// Reads policy text (JSON when it starts with '{', YAML otherwise) into a <see cref="DocNode"/> tree. Strict and
/// bounded: one document, no anchors, aliases or explicit tags, no duplicate keys, at most <see cref="MaxDepth"/>
/// levels and <see cref="MaxChars"/> characters. Iterative over the YAML event stream, so hostile nesting cannot
/// exhaust the stack.
/// </summary>
internal static class DocumentTree
{
    public const int MaxChars = 256 * 1024;
    public const int MaxDepth = 16;

    public static DocNode Read(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > MaxChars)
        {
            throw new PolicyFormatException(string.Empty, $"the document has {text.Length} characters; at most {MaxChars} are accepted");
        }

        var trimmed = text.AsSpan().TrimStart();
        if (trimmed.Length == 0)
        {
            throw new PolicyFormatException(string.Empty, "the document is empty");
        }

        return trimmed[0] == '{' ? ReadJson(text) : ReadYaml(text);
    }

    private static string At(long line, long column) => string.Create(CultureInfo.InvariantCulture, $" (line {line}, column {column})");

    private static DocNode ReadJson(string text)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = MaxDepth, AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException ex)
        {
            var where = ex.LineNumber is long l ? At(l + 1, (ex.BytePositionInLine ?? 0) + 1) : string.Empty;
            throw new PolicyFormatException(string.Empty, "not valid JSON" + where + ": " + FirstSentence(ex.Message));
        }

        using (doc)
        {
            return FromJson(doc.RootElement, string.Empty);
        }
    }

    private static string FirstSentence(string message)
    {
        var i = message.IndexOf(" Path:", StringComparison.Ordinal);
        return i > 0 ? message[..i] : message;
    }

    private static DocNode FromJson(JsonElement e, string path)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var map = new DocMap(string.Empty);
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var p in e.EnumerateObject())
                {
                    var childPath = PolicyPaths.Field(path, p.Name);
                    if (!seen.Add(p.Name))
                    {
                        throw new PolicyFormatException(childPath, "duplicate key");
                    }

                    map.Entries.Add(new(p.Name, FromJson(p.Value, childPath)));
                }

                return map;
            case JsonValueKind.Array:
                var list = new DocList(string.Empty);
                var i = 0;
                foreach (var item in e.EnumerateArray())
                {
                    list.Items.Add(FromJson(item, PolicyPaths.Index(path, i++)));
                }

                return list;
            case JsonValueKind.String:
                return new DocScalar(e.GetString() ?? string.Empty, ScalarKind.String, string.Empty);
            case JsonValueKind.Number:
                return new DocScalar(e.GetRawText(), ScalarKind.Number, string.Empty);
            case JsonValueKind.True:
                return new DocScalar("true", ScalarKind.Bool, string.Empty);
            case JsonValueKind.False:
                return new DocScalar("false", ScalarKind.Bool, string.Empty);
            default:
                return new DocScalar("null", ScalarKind.Null, string.Empty);
        }
    }

    private sealed class Frame
    {
        public Frame(DocNode node, string path)
        {
            Node = node;
            Path = path;
        }

        public DocNode Node { get; }

        public string Path { get; }

        /// <summary>For a mapping: the key read, waiting for its value.</summary>
        public string? PendingKey { get; set; }

        public HashSet<string> Keys { get; } = new(StringComparer.Ordinal);
    }

    private static DocNode ReadYaml(string text)
    {
        try
        {
            return ReadYamlEvents(new Parser(new StringReader(text)));
        }
        catch (YamlException ex)
        {
            throw new PolicyFormatException(string.Empty, "not valid YAML" + At(ex.Start.Line, ex.Start.Column) + ": " + ex.Message);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IndexOutOfRangeException or FormatException or OverflowException)
        {
            // The YAML scanner throws these for some damaged inputs (for example a truncated flow sequence); the text is still just invalid.
            throw new PolicyFormatException(string.Empty, "not valid YAML: the parser could not read the text");
        }
    }

    private static DocNode ReadYamlEvents(IParser parser)
    {
        var stack = new Stack<Frame>();
        DocNode? root = null;
        var documents = 0;
        while (parser.MoveNext())
        {
            var ev = parser.Current!;
            var where = At(ev.Start.Line, ev.Start.Column);
            switch (ev)
            {
                case StreamStart or StreamEnd or DocumentEnd or Comment:
                    continue;
                case DocumentStart:
                    if (++documents > 1)
                    {
                        throw new PolicyFormatException(string.Empty, "more than one YAML document" + where);
                    }

                    continue;
                case AnchorAlias:
                    throw new PolicyFormatException(CurrentPath(stack), "YAML aliases are not accepted" + where);
                case NodeEvent { Anchor.IsEmpty: false }:
                    throw new PolicyFormatException(CurrentPath(stack), "YAML anchors are not accepted" + where);
                case Scalar s:
                    if (!s.Tag.IsEmpty && s.Tag.Value is not "tag:yaml.org,2002:str" and not "!")
                    {
                        throw new PolicyFormatException(CurrentPath(stack), "explicit YAML tags are not accepted" + where);
                    }

                    if (stack.Count > 0 && stack.Peek() is { Node: DocMap, PendingKey: null } keyFrame)
                    {
                        var keyPath = PolicyPaths.Field(keyFrame.Path, s.Value);
                        if (!keyFrame.Keys.Add(s.Value))
                        {
                            throw new PolicyFormatException(keyPath, "duplicate key" + where);
                        }

                        keyFrame.PendingKey = s.Value;
                        continue;
                    }

                    var kind = s.Style is ScalarStyle.Plain ? ScalarKind.Plain : ScalarKind.String;
                    if (kind == ScalarKind.Plain && s.Value is "" or "~" or "null" or "Null" or "NULL")
                    {
                        kind = ScalarKind.Null;
                    }

                    Attach(stack, new DocScalar(s.Value, kind, where), ref root);
                    continue;
                case MappingStart ms:
                    CheckContainerStart(stack, ms, where);
                    stack.Push(new Frame(new DocMap(where), ChildPath(stack)));
                    continue;
                case SequenceStart ss:
                    CheckContainerStart(stack, ss, where);
                    stack.Push(new Frame(new DocList(where), ChildPath(stack)));
                    continue;
                case MappingEnd or SequenceEnd:
                    var done = stack.Pop();
                    Attach(stack, done.Node, ref root);
                    continue;
                default:
                    throw new PolicyFormatException(CurrentPath(stack), "unsupported YAML construct" + where);
            }
        }

        return root ?? throw new PolicyFormatException(string.Empty, "the document is empty");
    }

    private static void CheckContainerStart(Stack<Frame> stack, NodeEvent ev, string where)
    {
        if (!ev.Tag.IsEmpty)
        {
            throw new PolicyFormatException(CurrentPath(stack), "explicit YAML tags are not accepted" + where);
        }

        if (stack.Count > 0 && stack.Peek() is { Node: DocMap, PendingKey: null })
        {
            throw new PolicyFormatException(CurrentPath(stack), "mapping keys must be plain text" + where);
        }

        if (stack.Count >= MaxDepth)
        {
            throw new PolicyFormatException(CurrentPath(stack), $"nested deeper than {MaxDepth} levels" + where);
        }
    }

    /// <summary>The path of the node about to be read inside the top frame.</summary>
    private static string ChildPath(Stack<Frame> stack)
    {
        if (stack.Count == 0)
        {
            return string.Empty;
        }

        var top = stack.Peek();
        return top.Node switch
        {
            DocMap => PolicyPaths.Field(top.Path, top.PendingKey ?? string.Empty),
            DocList l => PolicyPaths.Index(top.Path, l.Items.Count),
            _ => top.Path,
        };
    }

    private static string CurrentPath(Stack<Frame> stack) => ChildPath(stack);

    private static void Attach(Stack<Frame> stack, DocNode node, ref DocNode? root)
    {
        if (stack.Count == 0)
        {
            root = node;
            return;
        }

        var top = stack.Peek();
        switch (top.Node)
        {
            case DocMap m:
                m.Entries.Add(new(top.PendingKey!, node));
                top.PendingKey = null;
                break;
            case DocList l:
                l.Items.Add(node);
                break;
        }
    }
}

/// <summary>Paths of fields in a policy document, as error messages and failing rules name them: <c>tdx.rtmr1[0]</c>.</summary>
internal static class PolicyPaths
{
    public static string Field(string parent, string name) => parent.Length == 0 ? name : parent + "." + name;

    public static string Index(string parent, int index) => string.Create(CultureInfo.InvariantCulture, $"{parent}[{index}]");
}
