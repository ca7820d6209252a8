"""Pure evaluation helpers: exact-match grading, self-consistency voting, per-difficulty breakdown.

The evaluate stage calls these with any task's `extract` (they only need its answers to be
comparable); the math-specific part is `is_correct`, which compares exact Fractions.

Self-consistency (Wang et al., 2023): sample k answers, extract each, return the most frequent.
Tie rule: among the answers with the highest count, the one whose *first* occurrence comes
earliest in `texts` wins. Callers put the greedy/first sample first, so a tie falls back to it;
the rule is deterministic and independent of hash order. Texts with no answer do not vote;
if none has an answer the vote is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterable, Sequence

from stratos.tasks.base import bucket_order
from stratos.tasks.math.extract import extract_aime, extract_answer
from stratos.tasks.math.numbers import to_fraction


def is_correct(text: str | None, answer: str | int | Fraction, fmt: str = "gsm8k") -> bool:
    """Exact match of the answer extracted from `text` against the reference `answer`.

    fmt "gsm8k": any exact number (2.5 == 5/2 == 2.50); "aime": an integer 0..999.
    """
    ref = to_fraction(answer)
    if ref is None:
        raise ValueError(f"reference answer {answer!r} is not a number")
    got = extract_aime(text) if fmt == "aime" else extract_answer(text)
    return got is not None and Fraction(got) == ref


def _key(x: Any) -> Any:
    """Hashable voting key: lists/sets/dicts from other tasks' extractors compare by content."""
    if isinstance(x, (list, tuple)):
        return tuple(_key(v) for v in x)
    if isinstance(x, (set, frozenset)):
        return frozenset(_key(v) for v in x)
    if isinstance(x, dict):
        return tuple(sorted((k, _key(v)) for k, v in x.items()))
    return x


@dataclass(frozen=True)
class Vote:
    answer: Any  # the winning extracted answer (None when no sample had one)
    text: str | None  # first sample that gave the winning answer (grade it with task.is_correct)
    count: int  # votes for the winner
    k: int  # samples cast (including those with no answer)


def vote(texts: Sequence[str], extract: Callable[[str], Any] = extract_answer) -> Vote:
    """Self-consistency over k samples; see the module docstring for the tie rule."""
    counts: dict[Any, int] = {}
    first: dict[Any, int] = {}
    answers: dict[Any, Any] = {}
    for i, t in enumerate(texts):
        a = extract(t)
        if a is None:
            continue
        k = _key(a)
        counts[k] = counts.get(k, 0) + 1
        first.setdefault(k, i)
        answers.setdefault(k, a)
    if not counts:
        return Vote(None, None, 0, len(texts))
    best = min(counts, key=lambda k: (-counts[k], first[k]))
    return Vote(answers[best], texts[first[best]], counts[best], len(texts))


def majority_vote(texts: Sequence[str], extract: Callable[[str], Any] = extract_answer) -> Any:
    """The most frequent extracted answer over k sampled texts (ties: earliest first occurrence)."""
    return vote(texts, extract).answer


def breakdown(rows: Sequence[dict], correct: Iterable[bool], key: str = "difficulty") -> dict[str, dict[str, float]]:
    """Accuracy per bucket of `row[key]`: {bucket: {"n", "correct", "accuracy"}}, buckets in natural order."""
    flags = list(correct)
    if len(flags) != len(rows):
        raise ValueError(f"breakdown: {len(rows)} rows but {len(flags)} grades")
    acc: dict[str, list[int]] = {}
    for row, ok in zip(rows, flags):
        n_c = acc.setdefault(str(row.get(key, "unknown")), [0, 0])
        n_c[0] += 1
        n_c[1] += bool(ok)
    return {
        b: {"n": n, "correct": c, "accuracy": c / n}
        for b, (n, c) in ((b, acc[b]) for b in bucket_order(acc))
    }
