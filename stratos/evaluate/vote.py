"""Answering by k-sample vote (self-consistency): sample k completions, keep the answer most of them give.

    python -m stratos +task=mahjong evaluate.samples=8 evaluate.temperature=0.7

With `evaluate.samples` = k > 1 the evaluate stage (and `score_file --samples k`) samples k completions per
question at `evaluate.temperature` and answers with the majority of their final answers, as read by the
task's own `extract` (Mahjong: the tile set of the answer line, order-free), by `stratos.tasks.vote.vote`:
completions without a readable answer do not vote; a tie goes to the answer first reached in sample order, so the
vote is a pure function of the samples. The completion written to predictions is the first sample that gave the
winning answer (the first sample when none is readable). The student answers alone: no verifier or rules engine
looks at the samples. k = 1 is greedy decoding. This module holds the `evaluate` group's checks too.
"""

from __future__ import annotations

from stratos.errors import check_values
from stratos.tasks.vote import Vote, vote  # noqa: F401  (the evaluate stage's vote: any task's extract)


def validate_evaluate(ev) -> None:
    """The `evaluate` group's ranges (stratos/config/infra.py EvaluateConfig)."""
    check_values([
        ("evaluate.batch_size", ev.batch_size, int(ev.batch_size) >= 1, "an integer >= 1"),
        ("evaluate.max_new_tokens", ev.max_new_tokens, int(ev.max_new_tokens) >= 0, "0 (the task's default) or more"),
        ("evaluate.n_latency", ev.n_latency, int(ev.n_latency) >= 0, "an integer >= 0"),
        *sampling_checks(ev.samples, ev.temperature, "evaluate.samples", "evaluate.temperature"),
    ])


def sampling_checks(samples, temperature, samples_key: str, temperature_key: str) -> list[tuple]:
    """`check_values` rows for a vote's k and temperature, under the caller's names (config keys or CLI flags)."""
    return [(samples_key, samples, int(samples) >= 1, "1 (greedy) or more samples to vote over"),
            (temperature_key, temperature, float(temperature) > 0, "a temperature > 0")]
