"""Re-evaluate a `label: expr = result` rationale step by step (the generator's proof of correctness).

A rationale is verified when every line's expression, parsed and evaluated exactly
(`numbers.safe_eval`, Fractions, no `eval`), equals the result written on that line; every
operand was available before it was used (stated in the question, a number word such as
"twice" or "a third", 100 for a percent, or an earlier line's result); the last result equals
the answer; and the text ends with `Answer: <answer>`.
"""

from __future__ import annotations

import re
from fractions import Fraction

from stratos.tasks.math import words as W
from stratos.tasks.math.extract import numbers
from stratos.tasks.math.numbers import safe_eval, to_fraction

_STEP = re.compile(r"^(?P<label>[^:=]+):\s*(?P<expr>[^=]+?)\s*=\s*(?P<result>-?[\d.,/]+)\s*$")


def grounded_numbers(question: str) -> set[Fraction]:
    """Numbers a rationale may use without deriving them: stated ones, number words, 100 for %."""
    known = set(numbers(question))
    for w in re.findall(r"[a-z]+", question.lower()):
        known.update(Fraction(v) for v in W.WORD_NUMBERS.get(w, ()))
    if "%" in question or "percent" in question.lower():
        known.add(Fraction(100))
    return known


def check_step(line: str, known: set[Fraction]) -> tuple[Fraction | None, list[str], bool]:
    """(result, problems, evaluated) of one `label: expr = result` line; `known` = the numbers it may use.

    The result is None when the line is no step at all; `evaluated` is False when its expression does not
    evaluate; problems are empty when it is a verified step: safe_eval(expr) == result and every operand of
    expr is in `known`.
    """
    m = _STEP.match(line.strip())
    if m is None:
        return None, [f"{line!r} is not 'label: expression = result'"], False
    result = to_fraction(m["result"])
    try:
        value = safe_eval(m["expr"])
    except ValueError as e:
        return result, [str(e)], False
    problems = [] if value == result else [f"{m['expr']} = {value}, not {m['result']}"]
    for operand in map(Fraction, re.findall(r"\d+(?:\.\d+)?", m["expr"])):
        if operand not in known:
            problems.append(f"operand {operand} appears nowhere before")
    return result, problems, True


def verify(question: str, rationale: str, answer: str) -> list[str]:
    """Re-evaluate every step of `rationale`; return the list of problems found (empty = verified).

    Checks: each line is `label: expr = result` with safe_eval(expr) == result; every operand of
    expr is grounded (see `grounded_numbers`) or an earlier result; the last result equals
    `answer`; the rationale ends with the line `Answer: <answer>`.
    """
    errors: list[str] = []
    *steps, last = rationale.strip().split("\n")
    if last.strip() != f"Answer: {answer}":
        errors.append(f"last line {last!r} is not 'Answer: {answer}'")
    known, result = grounded_numbers(question), None
    for i, line in enumerate(steps, 1):
        step, problems, evaluated = check_step(line, known)
        errors += [f"step {i}: {p}" if step is not None else f"step {i} {p}" for p in problems]
        if step is not None:
            result = step
        if evaluated:
            known.add(result)
    if not steps:
        errors.append("no steps")
    elif result != to_fraction(answer):
        errors.append(f"last step gives {result}, answer is {answer}")
    return errors
