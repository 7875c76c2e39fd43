using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Cel;

namespace AttestBroker.Policy;

/// <summary>
/// A named CEL expression over the claims that must evaluate to true, for what the policy's fields cannot say.
/// The variables are <c>claims</c> (a map, docs/claims.md), <c>tee</c> (string), <c>simulated</c> and
/// <c>crl_checked</c> (booleans).
/// </summary>
/// <remarks>
/// The CEL library parses with a recursive-descent parser and evaluates recursively, has no cost limit and runs
/// <c>matches</c> on an unbounded backtracking regex. Hostile expressions are therefore bounded before they reach it:
/// at most <see cref="MaxLength"/> characters, brackets nested at most <see cref="MaxNesting"/> deep, at most
/// <see cref="MaxMacros"/> comprehension macros (all, exists, exists_one, map, filter), no <c>matches</c>; and both
/// compilation and evaluation run on a thread with a <see cref="StackBytes"/> stack, far more than the bounded
/// expressions need. Any error while evaluating denies (expression_error).
/// </remarks>
public sealed partial class PolicyExpression
{
    public const int MaxLength = 512;
    public const int MaxNesting = 16;
    public const int MaxMacros = 2;
    public const int MaxExpressions = 16;
    public const int StackBytes = 16 * 1024 * 1024;

    private static readonly HashSet<string> Macros = new(StringComparer.Ordinal) { "all", "exists", "exists_one", "map", "filter" };

    private readonly CelProgramDelegate _program;

    private PolicyExpression(string name, string text, CelProgramDelegate program)
    {
        Name = name;
        Text = text;
        _program = program;
    }

    public string Name { get; }

    /// <summary>The CEL source.</summary>
    public string Text { get; }

    /// <summary>Checks the bounds and compiles; a problem is a <see cref="PolicyFormatException"/> at <paramref name="path"/>.</summary>
    internal static PolicyExpression Compile(string name, string text, string path)
    {
        if (Screen(text) is { } problem)
        {
            throw new PolicyFormatException(path, problem);
        }

        var (program, error) = OnLargeStack(() =>
        {
            try
            {
                return (new CelEnvironment(null, null).Compile(text), (string?)null);
            }
#pragma warning disable CA1031 // the CEL library throws many exception types for malformed text; each is a format error
            catch (Exception ex)
#pragma warning restore CA1031
            {
                return ((CelProgramDelegate?)null, FirstLine(ex.Message));
            }
        });

        return program is null
            ? throw new PolicyFormatException(path, "is not a valid CEL expression: " + error)
            : new PolicyExpression(name, text, program);
    }

    /// <summary>Why the text is refused before it reaches the CEL library, or null when it is within bounds.</summary>
    internal static string? Screen(string text)
    {
        if (text.Length == 0)
        {
            return "is empty";
        }

        if (text.Length > MaxLength)
        {
            return $"is {text.Length} characters long; at most {MaxLength} are accepted";
        }

        var depth = 0;
        var macros = 0;
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsControl(c) && c is not ('\n' or '\r' or '\t'))
            {
                return "contains a control character";
            }

            if (c is '\'' or '"')
            {
                var raw = i > 0 && text[i - 1] is 'r' or 'R' && (i < 2 || !IsIdentChar(text[i - 2]) || text[i - 2] is 'b' or 'B');
                var end = SkipString(text, i, raw);
                if (end < 0)
                {
                    return "has an unterminated string";
                }

                i = end;
                continue;
            }

            if (c is '(' or '[' or '{')
            {
                if (++depth > MaxNesting)
                {
                    return $"nests brackets more than {MaxNesting} deep";
                }
            }
            else if (c is ')' or ']' or '}')
            {
                depth--;
            }
            else if (char.IsAsciiLetter(c) || c == '_')
            {
                var start = i;
                while (i < text.Length && IsIdentChar(text[i]))
                {
                    i++;
                }

                var ident = text[start..i];
                if (ident == "matches")
                {
                    return "uses matches(), which is not accepted (regular expressions can run without bound)";
                }

                var next = i;
                while (next < text.Length && char.IsWhiteSpace(text[next]))
                {
                    next++;
                }

                if (Macros.Contains(ident) && next < text.Length && text[next] == '(' && ++macros > MaxMacros)
                {
                    return $"uses more than {MaxMacros} comprehension macros (all, exists, exists_one, map, filter)";
                }

                continue;
            }

            i++;
        }

        return null;
    }

    private static bool IsIdentChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    /// <summary>The index after the string literal that starts at <paramref name="start"/>, or -1 when it does not end.</summary>
    private static int SkipString(string text, int start, bool raw)
    {
        var q = text[start];
        var triple = start + 2 < text.Length && text[start + 1] == q && text[start + 2] == q;
        var i = start + (triple ? 3 : 1);
        while (i < text.Length)
        {
            var c = text[i];
            if (c == '\\' && !raw)
            {
                i += 2;
                continue;
            }

            if (c == q && (!triple || (i + 2 < text.Length && text[i + 1] == q && text[i + 2] == q)))
            {
                return i + (triple ? 3 : 1);
            }

            if (!triple && c is '\n' or '\r')
            {
                return -1;
            }

            i++;
        }

        return -1;
    }

    private static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        return line.Length <= 200 ? line : line[..200] + "...";
    }

    internal static IReadOnlyList<PolicyExpression> BindAll(DocNode node, string path)
    {
        var items = Read.List(node, path, MaxExpressions);
        var result = new List<PolicyExpression>(items.Count);
        for (var i = 0; i < items.Count; i++)
        {
            var itemPath = PolicyPaths.Index(path, i);
            var r = new MapReader(items[i], itemPath);
            var name = Read.String(r.Require("name"), r.FieldPath("name"), 64);
            if (!NamePattern().IsMatch(name))
            {
                throw new PolicyFormatException(r.FieldPath("name"), "must be 1 to 64 letters, digits, '.', '_' or '-'");
            }

            if (result.Any(e => e.Name == name))
            {
                throw new PolicyFormatException(r.FieldPath("name"), $"'{name}' is already the name of an earlier expression");
            }

            var exprPath = r.FieldPath("expr");
            var text = Read.String(r.Require("expr"), exprPath, MaxLength);
            r.EnsureNoUnknownFields();
            result.Add(Compile(name, text, exprPath));
        }

        return result;
    }

    /// <summary>Evaluates every expression; each that is not true is a failure.</summary>
    internal static IReadOnlyList<RuleFailure> EvaluateAll(IReadOnlyList<PolicyExpression> expressions, PolicyInput input)
    {
        return OnLargeStack(() =>
        {
            var variables = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["claims"] = ToCel(input.Claims, 0),
                ["tee"] = input.Tee,
                ["simulated"] = input.Simulated,
                ["crl_checked"] = input.CrlChecked,
            };
            var failures = new List<RuleFailure>();
            for (var i = 0; i < expressions.Count; i++)
            {
                var e = expressions[i];
                var rule = PolicyPaths.Index("expressions", i);
                object? result;
                try
                {
                    lock (e._program)
                    {
                        result = e._program.Invoke(variables);
                    }
                }
#pragma warning disable CA1031 // any failure of an expression denies; the library throws many exception types
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    failures.Add(new RuleFailure(PolicyCodes.ExpressionError, rule, e.Name, true, "error: " + FirstLine(ex.Message), $"expression '{e.Name}' could not be evaluated: {FirstLine(ex.Message)}"));
                    continue;
                }

                if (result is true)
                {
                    continue;
                }

                failures.Add(result is false
                    ? new RuleFailure(PolicyCodes.ExpressionFalse, rule, e.Name, true, false, $"expression '{e.Name}' is false: {Read.Clip(e.Text)}")
                    : new RuleFailure(PolicyCodes.ExpressionError, rule, e.Name, true, "not a boolean", $"expression '{e.Name}' did not evaluate to a boolean"));
            }

            return failures;
        });
    }

    /// <summary>Claims as CEL values: maps, lists, strings, booleans, int (or uint above the int range) and double.</summary>
    private static object? ToCel(JsonNode? node, int depth)
    {
        if (depth > 32)
        {
            return null;
        }

        switch (node)
        {
            case JsonObject o:
                var map = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, v) in o)
                {
                    map[k] = ToCel(v, depth + 1);
                }

                return map;
            case JsonArray a:
                var list = new List<object?>(a.Count);
                foreach (var v in a)
                {
                    list.Add(ToCel(v, depth + 1));
                }

                return list;
            case JsonValue v:
                switch (v.GetValueKind())
                {
                    case JsonValueKind.String:
                        return Claims.AsString(v);
                    case JsonValueKind.True:
                        return true;
                    case JsonValueKind.False:
                        return false;
                    case JsonValueKind.Number:
                        var text = Claims.NumberText(v);
                        if (text is null)
                        {
                            return null;
                        }

                        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
                        {
                            return l;
                        }

                        if (ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var u))
                        {
                            return u;
                        }

                        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : null;
                    default:
                        return null;
                }

            default:
                return null;
        }
    }

    /// <summary>Runs <paramref name="work"/> on a fresh thread with a large stack and waits for it; rethrows what it throws.</summary>
    private static T OnLargeStack<T>(Func<T> work)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(
            () =>
            {
                try
                {
                    result = work();
                }
#pragma warning disable CA1031 // carried to the calling thread and rethrown there
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    error = ex;
                }
            },
            StackBytes)
        {
            IsBackground = true,
            Name = "policy-cel",
        };
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }

        return result;
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex NamePattern();
}
