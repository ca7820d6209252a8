"""Answering by k-sample vote (self-consistency): sample k completions, keep the answer most of them give.

    python -m stratos +task=mahjong evaluate.samples=8 evaluate.temperature=0.7

With `evaluate.samples` = k > 1 the evaluate stage (and `score_file --samples k`) samples k completions per
question at `evaluate.temperature` and answers with the majority of their final answers, as read by the
task's own `extract` (Mahjong: the tile set of the answer line, order-free). Completions without a readable
answer do not vote; a tie goes to the answer first reached in sample order, so the vote is a pure function of
the samples. The completion written to predictions is the first sample that gave the winning answer. The
student answers alone: no verifier or rules engine looks at the samples. k = 1 is greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from stratos.errors import check_values


@dataclass(frozen=True)
class Vote:
    text: str  # the first sample that gave the winning answer (or the first sample when none is readable)
    answer: Any  # the winning answer as `extract` returns it (None when no sample is readable)
    votes: int  # samples that gave it
    k: int  # samples drawn


def _key(answer: Any):
    return tuple(answer) if isinstance(answer, list) else answer


def majority(samples: list[str], extract: Callable[[str], Optional[Any]]) -> Vote:
    """The majority answer of `samples` (k texts) under `extract`; ties to the earliest first occurrence."""
    counts: dict = {}
    first: dict = {}
    for i, text in enumerate(samples):
        answer = extract(text)
        if answer is None:
            continue
        key = _key(answer)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, (i, answer))
    if not counts:
        return Vote(samples[0] if samples else "", None, 0, len(samples))
    best = min(counts, key=lambda key: (-counts[key], first[key][0]))  # most votes, then earliest
    i, answer = first[best]
    return Vote(samples[i], answer, counts[best], len(samples))


def validate_evaluate(ev) -> None:
    """The `evaluate` group's ranges (stratos/config/infra.py EvaluateConfig)."""
    check_values([
        ("evaluate.batch_size", ev.batch_size, int(ev.batch_size) >= 1, "an integer >= 1"),
        ("evaluate.max_new_tokens", ev.max_new_tokens, int(ev.max_new_tokens) >= 0, "0 (the task's default) or more"),
        ("evaluate.n_latency", ev.n_latency, int(ev.n_latency) >= 0, "an integer >= 0"),
        ("evaluate.samples", ev.samples, int(ev.samples) >= 1, "1 (greedy) or more samples to vote over"),
        ("evaluate.temperature", ev.temperature, float(ev.temperature) > 0, "a temperature > 0"),
    ])
