using NUnit.Framework;
using static AttestBroker.Policy.Tests.Asserts;
using static AttestBroker.Policy.Tests.TestData;

namespace AttestBroker.Policy.Tests;

[TestFixture]
public sealed class Cel_expressions_over_the_claims
{
    private static string With(params string[] exprs) =>
        TdxPolicy("expressions:\n" + string.Concat(exprs.Select((e, i) => $"  - name: e{i}\n    expr: '{e.Replace("'", "''", StringComparison.Ordinal)}'\n")));

    [TestCase("claims.quote_version == 4")]
    [TestCase("tee == 'tdx' && !simulated && crl_checked")]
    [TestCase("claims.advisory_ids.all(a, a in ['INTEL-SA-00837'])")]
    [TestCase("claims.mr_td.startsWith('1111') && size(claims.rtmr0) == 96")]
    [TestCase("has(claims.tcb_status) && !has(claims.nothing)")]
    public void True_expression_grants(string expr) => Granted(Eval(With(expr), TdxInput()));

    [Test]
    public void False_expression_is_denied_with_expression_false_naming_the_expression() =>
        DeniedBy(Eval(With("claims.quote_version == 5"), TdxInput()), PolicyCodes.ExpressionFalse, "expressions[0]", "e0", "true", "false");

    [Test]
    public void Every_false_expression_is_reported()
    {
        var d = Eval(With("claims.quote_version == 5", "true", "claims.debug"), TdxInput());
        Assert.That(d.Failures.Select(f => f.Rule), Is.EqualTo(new[] { "expressions[0]", "expressions[2]" }));
    }

    [Test]
    public void Snp_tcb_claims_are_maps_of_numbers()
    {
        var policy = SnpPolicy("expressions:\n  - name: tcb\n    expr: claims.reported_tcb.snp >= 20 && claims.policy == 196608");
        Granted(Eval(policy, SnpInput()));
    }

    [TestCase("claims.no_such_claim == 1")]
    [TestCase("1 / (claims.quote_version - 4) == 0")]
    [TestCase("claims.mr_td + 1 == 2")]
    [TestCase("undeclared_variable")]
    public void Expression_that_cannot_be_evaluated_is_denied_with_expression_error(string expr) =>
        DeniedBy(Eval(With(expr), TdxInput()), PolicyCodes.ExpressionError, "expressions[0]", "e0", "true");

    [Test]
    public void Expression_that_is_not_boolean_is_denied_with_expression_error() =>
        DeniedBy(Eval(With("claims.quote_version"), TdxInput()), PolicyCodes.ExpressionError, "expressions[0]", "e0", "true", Q("not a boolean"));
}

[TestFixture]
public sealed class Hostile_cel_expressions_are_bounded
{
    private static PolicyFormatException Rejected(string expr) =>
        Assert.Throws<PolicyFormatException>(() => ReleasePolicy.Parse(TdxPolicy($"expressions:\n  - name: x\n    expr: \"{expr}\"")))!;

    [Test]
    public void Brackets_nested_deeper_than_the_limit_are_rejected_before_parsing()
    {
        var ex = Rejected(new string('(', 200) + "true" + new string(')', 200));
        Assert.That(ex.Path, Is.EqualTo("expressions[0].expr"));
        Assert.That(ex.Message, Does.Contain("nests brackets"));
    }

    [Test]
    public void Expression_longer_than_the_limit_is_rejected() =>
        Assert.That(Rejected("'" + new string('x', 600) + "' == ''").Message, Does.Contain("characters"));

    [Test]
    public void Regular_expressions_are_rejected() =>
        Assert.That(Rejected("claims.mr_td.matches('^(a+)+$')").Message, Does.Contain("matches"));

    [Test]
    public void More_than_two_comprehension_macros_are_rejected() =>
        Assert.That(Rejected("[1].all(a, [1].all(b, [1].exists(c, true)))").Message, Does.Contain("comprehension macros"));

    [Test]
    public void Unterminated_string_is_rejected() =>
        Assert.That(Rejected("'abc == 1").Message, Does.Contain("unterminated"));

    [Test]
    public void Strings_may_contain_what_code_may_not()
    {
        var policy = TdxPolicy("expressions:\n  - name: x\n    expr: \"'((((((((((((((((((((matches' != claims.mr_td\"");
        Granted(Eval(policy, TdxInput()));
    }

    [Test]
    public void Nesting_at_the_limit_compiles_and_evaluates()
    {
        var expr = new string('(', PolicyExpression.MaxNesting) + "true" + new string(')', PolicyExpression.MaxNesting);
        Granted(Eval(TdxPolicy($"expressions:\n  - name: x\n    expr: \"{expr}\""), TdxInput()));
    }

    [TestCase("!", 500)]
    [TestCase("-", 500)]
    public void Long_unary_chains_evaluate_without_exhausting_the_stack(string op, int count)
    {
        var expr = new string(op[0], count) + (op == "!" ? "true" : "1 == 1");
        Assert.DoesNotThrow(() => Eval(TdxPolicy($"expressions:\n  - name: x\n    expr: \"{expr}\""), TdxInput()));
    }

    [Test]
    public void Long_selection_chain_is_an_expression_error_not_a_crash()
    {
        var expr = "claims" + string.Concat(Enumerable.Repeat(".a", 250));
        var d = Eval(TdxPolicy($"expressions:\n  - name: x\n    expr: \"{expr}\""), TdxInput());
        Assert.That(d.Failures.Single().Code, Is.EqualTo(PolicyCodes.ExpressionError));
    }

    [Test]
    public void Long_addition_chain_evaluates()
    {
        var expr = string.Join("+", Enumerable.Repeat("1", 200)) + " == 200";
        Granted(Eval(TdxPolicy($"expressions:\n  - name: x\n    expr: \"{expr}\""), TdxInput()));
    }

    [Test]
    public void Two_nested_macros_over_the_longest_lists_complete()
    {
        var list = "[" + string.Join(",", Enumerable.Repeat("1", 120)) + "]";
        var expr = $"{list}.all(a, {list}.all(b, a == b))";
        Assert.That(expr, Has.Length.LessThanOrEqualTo(PolicyExpression.MaxLength));
        Granted(Eval(TdxPolicy($"expressions:\n  - name: x\n    expr: \"{expr}\""), TdxInput()));
    }

    [TestCase("1 +")]
    [TestCase("claims.")]
    [TestCase("((((")]
    [TestCase("}{")]
    [TestCase("claims[")]
    [TestCase("a.all(")]
    public void Malformed_expression_is_a_format_error_with_the_path(string expr) =>
        Assert.That(Rejected(expr).Path, Is.EqualTo("expressions[0].expr"));

    [Test]
    public void More_expressions_than_the_limit_are_rejected()
    {
        var many = string.Concat(Enumerable.Range(0, PolicyExpression.MaxExpressions + 1).Select(i => $"  - name: e{i}\n    expr: 'true'\n"));
        var ex = Assert.Throws<PolicyFormatException>(() => ReleasePolicy.Parse(TdxPolicy("expressions:\n" + many)))!;
        Assert.That(ex.Path, Is.EqualTo("expressions"));
    }
}
