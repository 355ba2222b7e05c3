"""The expression parser: grammar, precedence, names, subscripts, tables, errors, and
hypothesis properties (round trip through ``unparse``; arbitrary text never crashes)."""
from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import EngineError, ExpressionSyntaxError
from engine.parse.expr import BinOp, Call, Num, Ref, Table, Unary, parse_expression, references, unparse

P = parse_expression


def n(v):
    return Num(float(v))


def r(name, *subs):
    return Ref(name, tuple(subs) if subs else None)


# ---------------------------------------------------------------- atoms
@pytest.mark.parametrize("text, value", [
    ("0", 0.0), ("42", 42.0), ("3.5", 3.5), (".25", 0.25), ("5.", 5.0),
    ("1e3", 1000.0), ("2.5E-2", 0.025), ("1e+2", 100.0),
])
def test_numbers(text, value):
    assert P(text) == Num(value)


def test_names_are_case_sensitive_identifiers():
    assert P("Capital_2") == r("Capital_2")
    assert P("_x") == r("_x")
    assert P("x") != P("X")


def test_whitespace_is_ignored():
    assert P("  a\t+\n b ") == BinOp("+", r("a"), r("b"))


# ---------------------------------------------------------------- precedence
def test_mul_binds_tighter_than_add():
    assert P("a + b * c") == BinOp("+", r("a"), BinOp("*", r("b"), r("c")))
    assert P("a * b + c") == BinOp("+", BinOp("*", r("a"), r("b")), r("c"))


def test_left_associative_add_sub_mul_div():
    assert P("a - b - c") == BinOp("-", BinOp("-", r("a"), r("b")), r("c"))
    assert P("a / b / c") == BinOp("/", BinOp("/", r("a"), r("b")), r("c"))
    assert P("a / b * c") == BinOp("*", BinOp("/", r("a"), r("b")), r("c"))


def test_power_is_right_associative_and_binds_tightest():
    assert P("a ^ b ^ c") == BinOp("^", r("a"), BinOp("^", r("b"), r("c")))
    assert P("a * b ^ c") == BinOp("*", r("a"), BinOp("^", r("b"), r("c")))
    assert P("(a ^ b) ^ c") == BinOp("^", BinOp("^", r("a"), r("b")), r("c"))


def test_unary_minus():
    # -2^2 is -(2^2), as in mathematics and Vensim
    assert P("-2^2") == Unary("-", BinOp("^", n(2), n(2)))
    assert P("2^-1") == BinOp("^", n(2), Unary("-", n(1)))
    assert P("-a * b") == BinOp("*", Unary("-", r("a")), r("b"))
    assert P("a * -b") == BinOp("*", r("a"), Unary("-", r("b")))
    assert P("--a") == Unary("-", Unary("-", r("a")))
    assert P("+a") == Unary("+", r("a"))
    assert P("a - -b") == BinOp("-", r("a"), Unary("-", r("b")))


def test_parentheses_override_precedence():
    assert P("(a + b) * c") == BinOp("*", BinOp("+", r("a"), r("b")), r("c"))
    assert P("(((a)))") == r("a")


@pytest.mark.parametrize("text", ["((1 + 2) * 3)", "f(((1)))", "((1 ^ x) ^ y) ^ z", "((2))"])
def test_nested_parentheses_starting_with_a_number(text):
    expected = {"((1 + 2) * 3)": BinOp("*", BinOp("+", n(1), n(2)), n(3)),
                "f(((1)))": Call("f", (n(1),)),
                "((1 ^ x) ^ y) ^ z": BinOp("^", BinOp("^", BinOp("^", n(1), r("x")), r("y")), r("z")),
                "((2))": n(2)}[text]
    assert P(text) == expected
    assert P(unparse(expected)) == expected


def test_nested_parentheses_starting_with_a_name_work():
    assert P("((a + 2) * 3)") == BinOp("*", BinOp("+", r("a"), n(2)), n(3))


def test_comparisons():
    for op, canon in [("=", "="), ("==", "="), ("<>", "<>"), ("!=", "<>"), ("<", "<"), ("<=", "<="),
                      (">", ">"), (">=", ">=")]:
        assert P(f"a {op} b") == BinOp(canon, r("a"), r("b")), op
    # comparisons bind looser than arithmetic
    assert P("a + 1 > b * 2") == BinOp(">", BinOp("+", r("a"), n(1)), BinOp("*", r("b"), n(2)))


def test_logic_precedence():
    # not > and > or
    assert P("a or b and c") == BinOp("or", r("a"), BinOp("and", r("b"), r("c")))
    assert P("not a and b") == BinOp("and", Unary("not", r("a")), r("b"))
    assert P("not a = b") == Unary("not", BinOp("=", r("a"), r("b")))
    assert P("a > 1 and b < 2") == BinOp("and", BinOp(">", r("a"), n(1)), BinOp("<", r("b"), n(2)))


def test_vensim_logic_operators():
    assert P("a :AND: b") == BinOp("and", r("a"), r("b"))
    assert P("a :OR: b") == BinOp("or", r("a"), r("b"))
    assert P(":NOT: a") == Unary("not", r("a"))
    assert P("a :AND: b") == P("a and b")
    assert P("AND_x") == r("AND_x")  # a name that merely starts with a keyword


# ---------------------------------------------------------------- calls
def test_calls():
    assert P("MIN(a, 1)") == Call("MIN", (r("a"), n(1)))
    assert P("f()") == Call("f", ())
    assert P("MAX(a + b, MIN(c, d))") == Call("MAX", (BinOp("+", r("a"), r("b")), Call("MIN", (r("c"), r("d")))))


@pytest.mark.parametrize("text, canon", [
    ("IF THEN ELSE(c, 1, 2)", "IF_THEN_ELSE"),
    ("IF_THEN_ELSE(c, 1, 2)", "IF_THEN_ELSE"),
    ("if then else(c, 1, 2)", "IF_THEN_ELSE"),
    ("IF   THEN\tELSE(c, 1, 2)", "IF_THEN_ELSE"),
])
def test_if_then_else_spellings(text, canon):
    node = P(text)
    assert isinstance(node, Call) and node.func.upper() == canon
    assert node.args == (r("c"), n(1), n(2))


def test_multiword_names():
    assert P("PULSE TRAIN(1, 2, 3, 4)").func == "PULSE_TRAIN"
    assert P("PULSE TRAIN(1, 2, 3, 4)") == P("PULSE_TRAIN(1, 2, 3, 4)")
    assert P("DELAY FIXED(x, 2, 0)").func == "DELAY_FIXED"
    assert P("WITH LOOKUP(x, ((0, 0), (1, 1)))").func == "WITH_LOOKUP"
    assert P("TIME STEP") == r("TIME_STEP")
    assert P("INITIAL TIME + FINAL TIME") == BinOp("+", r("INITIAL_TIME"), r("FINAL_TIME"))
    assert P("TIME") == r("TIME")


# ---------------------------------------------------------------- subscripts
def test_subscripts():
    assert P("x[sector]") == r("x", "sector")
    assert P("x[a, b]") == r("x", "a", "b")
    assert P("SUM(x[d!])") == Call("SUM", (r("x", "d!"),))
    assert P("SUM(m[d!, region])") == Call("SUM", (r("m", "d!", "region"),))
    assert P("x[primary] * 2") == BinOp("*", r("x", "primary"), n(2))


@pytest.mark.parametrize("text", ["x[", "x[]", "x[1]", "x[a", "x[a,]", "x[!]", "x[a b]"])
def test_bad_subscripts(text):
    with pytest.raises(ExpressionSyntaxError):
        P(text)


# ---------------------------------------------------------------- inline tables
def test_inline_lookup_table():
    node = P("WITH_LOOKUP(x, ((0, 0), (1, 2), (3, -1.5)))")
    assert node == Call("WITH_LOOKUP", (r("x"), Table((0.0, 1.0, 3.0), (0.0, 2.0, -1.5))))
    node = P("WITH_LOOKUP(x, ((-2, 1), (+4, 5)))")
    assert node.args[1] == Table((-2.0, 4.0), (1.0, 5.0))


def test_inline_table_needs_increasing_x():
    with pytest.raises(ExpressionSyntaxError, match="increasing"):
        P("WITH_LOOKUP(x, ((1, 0), (0, 1)))")


@pytest.mark.parametrize("text", ["WITH_LOOKUP(x, ((0, a), (1, 1)))", "WITH_LOOKUP(x, ((0, 0), (1 1)))",
                                  "WITH_LOOKUP(x, ((0, 0), (1, 1))"])
def test_bad_inline_tables(text):
    with pytest.raises(ExpressionSyntaxError):
        P(text)


# ---------------------------------------------------------------- errors and positions
@pytest.mark.parametrize("text, pos", [
    ("1 +", 3),           # ends too early: points at the end
    ("a b", 2),           # unexpected name
    ("x $ y", 2),         # unexpected character
    ("(a + b", 6),        # missing ')'
    ("a + )", 4),
    ("MIN(a,, b)", 6),
    ("", 0),
    ("   ", 3),
    ("a * * b", 4),
    ("x[1]", 2),
])
def test_error_positions(text, pos):
    with pytest.raises(ExpressionSyntaxError) as info:
        P(text)
    err = info.value
    assert err.position == pos
    assert err.text == text
    assert isinstance(err, EngineError)
    assert f"column {pos + 1}" in str(err)


def test_error_message_points_at_column():
    with pytest.raises(ExpressionSyntaxError) as info:
        P("a + * b")
    lines = str(info.value).splitlines()
    assert lines[1].strip() == "a + * b"
    assert lines[2].index("^") - lines[1].index("a") == 4


def test_non_text_input_is_a_syntax_error():
    with pytest.raises(ExpressionSyntaxError):
        P(3.0)  # type: ignore[arg-type]


DEEP = {"parens": "(" * 3000 + "a" + ")" * 3000, "minus": "-" * 3000 + "1", "not": "not " * 2000 + "a",
        "power": "2^" * 2000 + "1", "calls": "f(" * 2000 + "1" + ")" * 2000}


def test_moderate_nesting_parses():
    assert P("(" * 60 + "a" + ")" * 60) == r("a")
    assert P("-" * 60 + "1") is not None
    assert P("f(" * 40 + "1" + ")" * 40) is not None


@pytest.mark.parametrize("kind", sorted(DEEP))
def test_deep_nesting_does_not_crash(kind):
    with contextlib.suppress(ExpressionSyntaxError):
        P(DEEP[kind])


def test_references():
    assert references(P("a + MIN(b[x], SUM(c[d!])) * TIME")) == {"a", "b", "c", "TIME"}


# ---------------------------------------------------------------- hypothesis: round trip
_KEYWORDS = {"and", "or", "not"}
_MULTI_FIRST = {"IF", "PULSE", "DELAY", "WITH", "ACTIVE", "SAMPLE", "TIME", "INITIAL", "FINAL"}

idents = st.from_regex(re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,6}", re.ASCII), fullmatch=True).filter(
    lambda s: s.lower() not in _KEYWORDS and s.upper() not in _MULTI_FIRST)
numbers = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(float),
    st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False),
)
signed = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
subs = st.lists(st.tuples(idents, st.booleans()).map(lambda p: p[0] + ("!" if p[1] else "")),
                min_size=1, max_size=3).map(tuple)
leaves = st.one_of(numbers.map(Num), idents.map(Ref), st.builds(Ref, idents, subs))
tables = st.lists(st.tuples(signed, signed), min_size=1, max_size=4).map(
    lambda pts: Table(tuple(sorted(p[0] for p in pts)), tuple(p[1] for p in pts)))
BINOPS = ["+", "-", "*", "/", "^", "=", "<>", "<", "<=", ">", ">=", "and", "or"]


def _extend(children):
    return st.one_of(
        st.builds(BinOp, st.sampled_from(BINOPS), children, children),
        st.builds(Unary, st.sampled_from(["-", "+", "not"]), children),
        st.builds(Call, idents, st.lists(children, max_size=3).map(tuple)),
        st.builds(lambda f, a, t: Call(f, (a, t)), idents, children, tables),
    )


asts = st.recursive(leaves, _extend, max_leaves=25)


@settings(derandomize=True, max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(asts)
def test_round_trip_unparse_parse(node):
    text = unparse(node)
    assert P(text) == node, text


@settings(derandomize=True, max_examples=300, deadline=None)
@given(asts)
def test_unparse_is_stable(node):
    text = unparse(node)
    try:
        again = P(text)
    except ExpressionSyntaxError:
        return
    assert unparse(again) == text


# ---------------------------------------------------------------- hypothesis: no crash
def _parse_or_syntax_error(text):
    try:
        node = P(text)
    except ExpressionSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        return None
    # whatever parses must unparse and parse again
    assert isinstance(node, (Num, Ref, Call, BinOp, Unary, Table))
    return node


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(st.text())
def test_arbitrary_text_never_crashes(text):
    _parse_or_syntax_error(text)


TOKENS = ["a", "x", "b_2", "TIME", "IF", "THEN", "ELSE", "PULSE", "TRAIN", "WITH", "LOOKUP", "DELAY", "FIXED",
          "STEP", "INITIAL", "and", "or", "not", ":AND:", ":OR:", ":NOT:", "0", "1", "2.5", "1e3", ".5", "1e",
          "+", "-", "*", "/", "^", "(", ")", "((", "))", ",", "[", "]", "!", "=", "==", "<>", "!=", "<", "<=",
          ">", ">=", " ", "MIN", "SUM", "d!", ":", ".", "e", "$", "\n"]


@settings(derandomize=True, max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
def test_token_soup_never_crashes(text):
    _parse_or_syntax_error(text)


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map(" ".join))
def test_spaced_token_soup_never_crashes(text):
    _parse_or_syntax_error(text)
