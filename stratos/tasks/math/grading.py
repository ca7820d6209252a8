"""Pure evaluation helpers: exact-match grading, self-consistency voting, per-difficulty breakdown.

The math-specific part is `is_correct`, which compares exact Fractions; `vote` (any task's `extract`) lives in
stratos/tasks/vote.py, and `majority_vote` is it with the math extractor.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Callable, Iterable, Sequence

from stratos.tasks.base import bucket_order
from stratos.tasks.math.extract import extract_aime, extract_answer
from stratos.tasks.math.numbers import to_fraction
from stratos.tasks import vote as _voting
from stratos.tasks.vote import Vote  # noqa: F401


def is_correct(text: str | None, answer: str | int | Fraction, fmt: str = "gsm8k") -> bool:
    """Exact match of the answer extracted from `text` against the reference `answer`.

    fmt "gsm8k": any exact number (2.5 == 5/2 == 2.50); "aime": an integer 0..999.
    """
    ref = to_fraction(answer)
    if ref is None:
        raise ValueError(f"reference answer {answer!r} is not a number")
    got = extract_aime(text) if fmt == "aime" else extract_answer(text)
    return got is not None and Fraction(got) == ref


def vote(texts: Sequence[str], extract: Callable[[str], Any] = extract_answer) -> Vote:
    """Self-consistency over k samples (stratos/tasks/vote.py), with the math extractor by default."""
    return _voting.vote(texts, extract)


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
