"""Exact number parsing, canonical printing and the AST-only arithmetic evaluator."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from stratos.tasks.math.numbers import fmt, safe_eval, to_fraction


@pytest.mark.parametrize("text,value", [
    ("18", F(18)), ("007", F(7)), ("-2.50", F(-5, 2)), ("1,234", F(1234)), (".5", F(1, 2)),
    ("3/4", F(3, 4)), (" -6 / 4 ", F(-3, 2)), (0.1, F(1, 10)), (7, F(7)), (F(2, 3), F(2, 3)),
    ("1/0", None), ("12 apples", None), ("", None), ("1,23", None), (True, None), (float("nan"), None),
])
def test_to_fraction(text, value):
    assert to_fraction(text) == value


@pytest.mark.parametrize("q,text", [(F(18), "18"), (F(-5, 2), "-2.5"), (F(7, 3), "7/3"), (F(1, 8), "0.125"),
                                    (F(-1, 3), "-1/3"), (F(0), "0"), (F(12345, 100), "123.45")])
def test_fmt_round_trips(q, text):
    assert fmt(q) == text
    assert to_fraction(fmt(q)) == q


@pytest.mark.parametrize("expr,value", [
    ("48/2", F(24)), ("12 * .5", F(6)), ("(3 + 4) * 2 - 1", F(13)), ("7 / 2", F(7, 2)), ("-3 + 1", F(-2)),
    ("3 x 4", F(12)), ("10 ÷ 4", F(5, 2)), ("1,200 / 3", F(400)), ("$5 * 3", F(15)), ("0.1 + 0.2", F(3, 10)),
])
def test_safe_eval_exact(expr, value):
    assert safe_eval(expr) == value


@pytest.mark.parametrize("expr", ["__import__('os')", "2 ** 10", "abs(-3)", "1 / 0", "a + 1", "", "3 %  2", "[1]"])
def test_safe_eval_refuses_non_arithmetic(expr):
    with pytest.raises(ValueError):
        safe_eval(expr)
