"""Plain-text arithmetic and word-problem knowledge for knowledge injection (`MathTask.corpus()`).

Short on purpose: the reading rules that turn words into operations (the part a tiny student
gets wrong), the answer format, and the small multiplication and division facts the synthetic
problems use. No generated problems are included, so nothing here can leak a test item.
"""

from __future__ import annotations

RULES = """\
How to solve an arithmetic word problem.
Read the problem one sentence at a time. Each sentence that changes a number is one step.
Write each step on its own line as: what it is: first number, operation, second number = result.
Use only numbers from the problem or results of earlier steps.
The last line is: Answer: followed by the final number, with no units.

Words and the operations they mean.
more, buys, finds, gets, earns, is given, in all, altogether, together: add (+).
gives away, loses, sells, uses, spends, eats, fewer, less, left: subtract (-).
times as many, twice, double, each (when counting all of them), per, every day for: multiply (*).
shares equally among, splits into, packs into groups of, each gets, how many groups: divide (/).
half of: divide by 2. a third of: divide by 3. a quarter of: divide by 4. a fifth of: divide by 5.
two thirds of: multiply by 2, then divide by 3. three quarters of: multiply by 3, then divide by 4.
p% of a number: multiply by p, then divide by 100. What is left after losing p%: the number minus p% of it.
A has k more than B: A = B + k. A has k fewer than B: A = B - k. A has k times as many as B: A = B * k.
Selling n things for $k each gives n * k dollars. Buying things that cost $k each with $m gives m / k things.

Checking an answer.
Counts of things are whole numbers and never negative. If a division leaves a remainder, re-read the problem.
Estimate first: 19 * 21 is about 20 * 20 = 400, so 399 is reasonable and 3990 is not.
Addition and multiplication can be done in any order; subtraction and division cannot.
Example: 48 / 2 = 24, then 48 + 24 = 72, Answer: 72.
"""


def facts(upto: int = 12) -> str:
    """Multiplication and matching division facts 2..upto (the arithmetic a tiny student must recall)."""
    lines = []
    for a in range(2, upto + 1):
        lines.append(" ".join(f"{a} * {b} = {a * b}." for b in range(2, upto + 1)))
        lines.append(" ".join(f"{a * b} / {a} = {b}." for b in range(2, upto + 1)))
    return "Multiplication and division facts.\n" + "\n".join(lines) + "\n"


def corpus() -> str:
    return RULES + "\n" + facts()
