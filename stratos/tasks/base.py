"""The contract every task (`conf/task/*.yaml`) fulfils.

A task turns its config into train/val/test rows, writes prompts for models, knows the
teacher-quality step-by-step rationale for a row, and grades free model text strictly.
The data stage, the teachers, the distill stage and the evaluate stage only ever talk to a
task through this protocol, so adding a task never touches them.

Row = one JSON-serialisable dict. Keys every task provides:
  id          str   stable id (hash of the canonical question), unique across splits
  question    str   the prompt text given to models (already formatted)
  answer      str   canonical final answer text (what `answer_line` prints after "Answer: ")
  rationale   str   verified step-by-step solution, ending with the answer line
  difficulty  str   bucket for breakdowns (e.g. "waits=3", "steps=4")
Tasks add their own keys (e.g. "hand", "winning_tiles"). Optional, read by the distill stage:
  curriculum_stage  int >= 0   training rows train in stage order (stratos/distill/curriculum.py)

Extra held-out splits: `build_splits` may return more test splits, named `test_<label>` (Mahjong adds
`test_natural` or `test_balanced`, the test distribution `task.test_distribution` did not pick). The data
stage writes each as `test_<label>.jsonl` and the evaluate stage scores it like `test`, under
`evaluate/test_<label>/...`; `test` stays the headline. A task without such an option returns none
(the math tasks, whose synthetic test split already cycles through its difficulty buckets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

ANSWER_PREFIX = "Answer:"


@dataclass(frozen=True)
class Judgement:
    """A task's line-by-line verdict on a model's rationale (`judge`, optional in the protocol): the verifier
    teacher of on-policy KD (stratos/distill/on_policy.py) trains the student on `corrected`."""

    correct_lines: int  # leading lines of the text that are right (each one checked against the engine)
    judged_lines: int  # lines read: the right ones, plus the first wrong one if any
    corrected: str  # the text's right leading lines + the engine's continuation from the first wrong line
    all_correct: bool  # the text is a verified rationale, line for line, with nothing after its answer line


NO_STAGE = -1  # a row (or corpus window) without a curriculum stage


def stage_of(row: dict) -> int:
    """The row's `curriculum_stage` (an int >= 0), or NO_STAGE."""
    s = row.get("curriculum_stage")
    return int(s) if isinstance(s, int) and not isinstance(s, bool) and s >= 0 else NO_STAGE


def largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """`total` split in proportion to `weights` (sum > 0), rounded by largest remainders: the counts sum to
    `total` and each is its exact share rounded down or up; ties go to the earlier weight."""
    w = sum(weights)
    exact = [total * x / w for x in weights]
    out = [int(x) for x in exact]
    for i in sorted(range(len(out)), key=lambda i: (out[i] - exact[i], i))[: total - sum(out)]:
        out[i] += 1
    return out


def bucket_order(buckets: Iterable[str]) -> list[str]:
    """Difficulty buckets in reading order, numbers by value: waits=2 before waits=13."""
    return sorted(buckets, key=lambda b: [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", b)])


@runtime_checkable
class Task(Protocol):
    name: str
    max_new_tokens: int  # generation budget that fits a full rationale

    def build_splits(self) -> dict[str, list[dict]]:
        """{"train": rows, "val": rows, "test": rows, optionally "test_<label>": rows}; deterministic by seed;
        no question in two splits."""
        ...

    def rationale(self, row: dict) -> str:
        """The teacher's verified step-by-step text for `row`, ending with `answer_line(row)`."""
        ...

    def answer_line(self, row: dict) -> str:
        """`"Answer: <canonical answer>"`."""
        ...

    def extract(self, text: str) -> Any | None:
        """Parse the final answer out of free model text; None when there is none."""
        ...

    def is_correct(self, row: dict, text: str) -> bool:
        """Strict grading of model text against the row's answer (tolerant of format only)."""
        ...

    def features(self, row: dict) -> dict[str, float]:
        """Task-complexity features (e.g. answer-set size, rationale length) for strategy choice."""
        ...

    # Optional: `slice_of(row) -> str`, the row's slice (e.g. Mahjong's number of winning tiles) for
    # multi-teacher routing by slice (stratos/distill/routing.py); a task without it routes by column only.

    def corpus(self) -> str:
        """Domain knowledge as plain text (e.g. the rules), for knowledge injection."""
        ...

    # Optional: `judge(row, text) -> Judgement`, for tasks whose rationale can be checked line by line against
    # the engine (Mahjong). Sound: `corrected` always passes the task's own verifier and is correct. A task
    # without it cannot be the verifier teacher of on-policy KD (refused before any work).
