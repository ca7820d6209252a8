"""Exact numbers for math tasks: parse, print canonically, and evaluate arithmetic safely.

All arithmetic is done on `fractions.Fraction`, so 0.1 + 0.2 == 3/10 exactly and a rationale
step such as `7 / 2 = 3.5` can be checked without float tolerance.

Canonical printing (`fmt`): integers as `18`, terminating decimals as `2.5`, anything else as
`7/3`. Every canonical string parses back to the same Fraction (`to_fraction(fmt(q)) == q`).
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

# A plain numeric literal: optional sign, digits with optional thousands groups, decimals, a/b.
_LITERAL = re.compile(
    r"^\s*(?P<sign>[-+])?\s*(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?\s*$"
)


def to_fraction(text: str | int | float | Fraction) -> Fraction | None:
    """Exact value of a plain numeric literal ('1,234', '-2.50', '07', '3/4'); None if it is not one.

    Floats are converted through their shortest repr (so 0.1 -> 1/10, not the binary value).
    """
    if isinstance(text, Fraction):
        return text
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        return Fraction(repr(text)) if text == text and abs(text) != float("inf") else None
    m = _LITERAL.match(str(text))
    if m is None:
        return None
    value = Fraction(m["num"].replace(",", ""))  # Fraction('007') == 7: leading zeros are fine
    if m["den"] is not None:
        den = Fraction(m["den"])
        if den == 0:
            return None
        value /= den
    return -value if m["sign"] == "-" else value


def _terminates(q: Fraction) -> bool:
    """True when q has a finite decimal expansion (denominator of the form 2^a 5^b)."""
    d = q.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def fmt(q: Fraction) -> str:
    """Canonical text of an exact number: '18', '-2.5', '7/3'."""
    if q.denominator == 1:
        return str(q.numerator)
    if _terminates(q):
        sign = "-" if q < 0 else ""
        a = abs(q)
        whole, rest = divmod(a.numerator, a.denominator)
        digits = []
        while rest:  # long division terminates because the denominator is 2^a 5^b
            rest *= 10
            digits.append(str(rest // a.denominator))
            rest %= a.denominator
        return f"{sign}{whole}.{''.join(digits)}"
    return f"{q.numerator}/{q.denominator}"


# ---------------------------------------------------------------- safe arithmetic evaluation
_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return to_fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ValueError("division by zero")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    raise ValueError(f"not plain arithmetic: {ast.dump(node)[:60]}")


def safe_eval(expr: str) -> Fraction:
    """Exact value of an arithmetic expression with + - * / ( ) and numbers; ValueError otherwise.

    Accepts the notations found in rationales: `×`/`x` between numbers, `÷`, `−`, thousands
    commas ('1,200'), a `$` before a number and a trailing `%`-free number. Never calls `eval`:
    the expression is parsed to an AST and only arithmetic nodes are interpreted.
    """
    s = expr.replace("×", "*").replace("÷", "/").replace("−", "-").replace("$", "")
    s = re.sub(r"(?<=\d)\s*[xX]\s*(?=[\d(])", "*", s)  # 3 x 4 -> 3*4
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # 1,200 -> 1200
    if not s.strip() or len(s) > 200:
        raise ValueError(f"not plain arithmetic: {expr!r}")
    try:
        tree = ast.parse(s.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not plain arithmetic: {expr!r}") from e
    return _eval(tree)
