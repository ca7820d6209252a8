"""Self-consistency voting over k sampled texts, for any task's `extract` (its answers only need to compare).

Self-consistency (Wang et al., 2023): sample k answers, extract each, return the most frequent.
Tie rule: among the answers with the highest count, the one whose *first* occurrence comes
earliest in `texts` wins. Callers put the greedy/first sample first, so a tie falls back to it;
the rule is deterministic and independent of hash order. Texts with no answer do not vote;
if none has an answer the vote is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence


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


def vote(texts: Sequence[str], extract: Callable[[str], Any]) -> Vote:
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
