"""Math reasoning tasks: `+task=gsm8k` (GSM8KTask) and `+task=aime` (AimeTask).

Where rows come from (exactly one; both set is a UserError):
  task.source       fsspec file or folder in the task's standard format (stratos/tasks/math/loaders.py)
  task.hf_dataset   Hugging Face dataset name (+ task.hf_config), needs the `datasets` package
  neither           the offline generator (stratos/tasks/math/generator.py): verified GSM8K-style
                    problems with min_steps..max_steps steps, rows marked "synthetic": true

Rows follow stratos/tasks/base.py: id, question, answer (canonical number text), rationale ending
with "Answer: N", difficulty ("steps=N" for GSM8K/synthetic, "pos=1-5" etc. for AIME), plus
steps, synthetic, source and format-specific keys.

`extract` returns the canonical answer *text* ("18", "2.5", "7/3"; AIME "42") so it compares
equal to `row["answer"]`, is JSON-serialisable and hashable (majority votes).
"""

from __future__ import annotations

import random
import re
from typing import Optional

from stratos.tasks.math import knowledge
from stratos.tasks.math.extract import extract_aime, extract_answer, numbers
from stratos.tasks.math.formats import aime_row, gsm8k_row, row_id
from stratos.tasks.math.generator import generate_problem
from stratos.tasks.math.grading import is_correct as _is_correct
from stratos.tasks.math.loaders import load_hf, load_source, split_pools
from stratos.tasks.math.numbers import fmt
from stratos.tasks.base import ANSWER_PREFIX, Judgement
from stratos.tasks.math.verify import check_step, grounded_numbers, verify
from stratos.errors import UserError, bad_value
from stratos.config import MathTaskConfig

MAX_STEPS = 12  # generator limit: longer chains overflow a tiny student's context and value range
TOKENS_PER_STEP = 16  # one "label: a op b = c" line in a ~400-entry BPE, measured with margin

_D = MathTaskConfig  # the one place the defaults live (conf/task/*.yaml set only differences)


class MathTask:
    """Word problems with a single numeric answer, graded by exact value (2.50 == 5/2 == 2.5)."""

    fmt = "gsm8k"

    def __init__(
        self,
        name: str = "gsm8k",
        n_train: int = _D.n_train,
        n_val: int = _D.n_val,
        n_test: int = _D.n_test,
        seed: int = _D.seed,
        source: Optional[str] = _D.source,
        min_steps: int = _D.min_steps,
        max_steps: int = _D.max_steps,
        hf_dataset: Optional[str] = _D.hf_dataset,
        hf_config: Optional[str] = _D.hf_config,
        distractor_rate: float = _D.distractor_rate,
        max_value: int = _D.max_value,
    ) -> None:
        if not 1 <= int(min_steps) <= MAX_STEPS:
            raise bad_value("task.min_steps", min_steps, f"an integer 1..{MAX_STEPS}")
        if not int(min_steps) <= int(max_steps) <= MAX_STEPS:
            raise bad_value("task.max_steps", max_steps, f"an integer min_steps ({min_steps})..{MAX_STEPS}")
        if not 0.0 <= float(distractor_rate) <= 1.0:
            raise bad_value("task.distractor_rate", distractor_rate, "0 <= rate <= 1")
        if int(max_value) < 100:
            raise bad_value("task.max_value", max_value, "an integer >= 100")
        if source and hf_dataset:
            raise UserError(f"task.source={source!r} and task.hf_dataset={hf_dataset!r} are both set; keep one")
        for k, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            if int(v) <= 0:
                raise bad_value(f"task.{k}", v, "an integer > 0")
        self.name = name
        self.sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
        self.seed = int(seed)
        self.source, self.hf_dataset, self.hf_config = source, hf_dataset, hf_config
        self.min_steps, self.max_steps = int(min_steps), int(max_steps)
        self.distractor_rate, self.max_value = float(distractor_rate), int(max_value)

    # ------------------------------------------------------------ data
    @property
    def synthetic(self) -> bool:
        return not (self.source or self.hf_dataset)

    @property
    def max_new_tokens(self) -> int:
        """Generation budget that fits a full rationale: per-step lines for synthetic data, else the format's."""
        if self.synthetic:
            return TOKENS_PER_STEP * self.max_steps + 16
        return 384

    def _parse(self, rec: dict, where: str) -> dict:
        return gsm8k_row(rec, where, source=self.source or self.hf_dataset or "")

    def build_splits(self) -> dict[str, list[dict]]:
        """{"train", "val", "test"} rows; deterministic by seed; no question in two splits."""
        if self.source:
            return split_pools(load_source(self.source, self._parse), self.sizes, self.seed, repr(self.source))
        if self.hf_dataset:
            pools = load_hf(self.hf_dataset, self.hf_config, self._parse)
            return split_pools(pools, self.sizes, self.seed, f"hf_dataset {self.hf_dataset!r}")
        return self._synthesize()

    def _synthesize(self) -> dict[str, list[dict]]:
        """Generated splits: test first, then val, then train, each from its own seeded stream.

        Step counts cycle through min_steps..max_steps so every difficulty bucket is equally
        filled; a question already drawn (in any split) is skipped, so splits are disjoint.
        """
        taken: set[str] = set()
        out: dict[str, list[dict]] = {}
        span = self.max_steps - self.min_steps + 1
        for split in ("test", "val", "train"):
            rng = random.Random(f"{self.name}-{self.seed}-{split}")
            rows: list[dict] = []
            tries = 0
            while len(rows) < self.sizes[split]:
                tries += 1
                if tries > 20 * self.sizes[split] + 1000:  # only reachable with tiny step ranges and huge n
                    raise UserError(f"task.n_{split}={self.sizes[split]}: cannot generate that many distinct "
                                    f"problems with {self.min_steps}..{self.max_steps} steps (raise task.max_steps)")
                steps = self.min_steps + len(rows) % span
                p = generate_problem(rng, steps, self.max_value, self.distractor_rate)
                rid = row_id(f"{self.name}-syn", p["question"])
                if rid in taken:
                    continue
                taken.add(rid)
                rows.append({"id": rid, "question": p["question"], "answer": p["answer"],
                             "rationale": p["rationale"], "difficulty": f"steps={steps}", "steps": steps,
                             "ops": p["ops"], "synthetic": True, "source": "generator"})
            out[split] = rows
        return out

    # ------------------------------------------------------------ teacher text and grading
    def rationale(self, row: dict) -> str:
        return row["rationale"]

    def answer_line(self, row: dict) -> str:
        return f"{ANSWER_PREFIX} {row['answer']}"

    def extract(self, text: str) -> str | None:
        v = extract_answer(text)
        return None if v is None else fmt(v)

    def is_correct(self, row: dict, text: str) -> bool:
        return _is_correct(text, row["answer"], fmt=self.fmt)

    def features(self, row: dict) -> dict[str, float]:
        rationale = row.get("rationale", "")
        steps = row.get("steps")
        if steps is None:  # AIME rows: count the rationale's lines before the answer line
            steps = max(0, len([ln for ln in rationale.split("\n") if ln.strip()]) - 1)
        answer = str(row.get("answer", ""))
        return {
            "steps": float(steps),
            "question_chars": float(len(row.get("question", ""))),
            "rationale_chars": float(len(rationale)),
            "question_numbers": float(len(numbers(row.get("question", "")))),
            "answer_digits": float(len(re.sub(r"\D", "", answer))),
        }

    def corpus(self) -> str:
        return knowledge.corpus()

    # ------------------------------------------------------------ line judge (verifier teacher, on-policy KD)
    @property
    def has_line_judge(self) -> bool:
        """Generated rationales are `label: expr = result` steps the judge can check; dataset solutions are prose."""
        return self.synthetic

    def judge(self, row: dict, text: str) -> Judgement:
        """Judge `text` step by step against the row's verified rationale.

        Step i is right when it is a verified step (its expression evaluates to its result, every operand stated in
        the question or an earlier result) whose result is the reference's i-th result; any label and wording of the
        expression are fine. The answer line must be the reference's. `corrected` keeps the right leading lines and
        continues with the reference's from the first wrong one: its operands are the same numbers, so it verifies.
        A reference that does not verify itself (dataset prose) is returned whole, with no line judged right.
        """
        ref = row["rationale"].strip().split("\n")
        lines = text.split("\n") if text.strip() else []
        if verify(row["question"], row["rationale"], row["answer"]):
            return Judgement(0, int(bool(lines)), row["rationale"], False)
        known = grounded_numbers(row["question"])
        k = 0
        while k < min(len(lines), len(ref)):
            if k == len(ref) - 1:  # the answer line
                if lines[k].strip() != ref[k].strip():
                    break
            else:
                want = check_step(ref[k], known)[0]
                try:
                    got, problems, _ = check_step(lines[k], known)
                except (ValueError, ZeroDivisionError, ArithmeticError):
                    break
                if problems or got != want:
                    break
                known.add(want)
            k += 1
        wrong = k < len(lines)
        return Judgement(k, k + int(wrong), "\n".join(lines[:k] + ref[k:]), k == len(ref) and not wrong)


class GSM8KTask(MathTask):
    """GSM8K: grade-school word problems, answers any exact number, rationale lines = steps."""

    fmt = "gsm8k"


class AimeTask(MathTask):
    """AIME: competition problems, answers integers 0..999 (leading zeros allowed in model text)."""

    fmt = "aime"

    def __init__(self, name: str = "aime", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        if self.synthetic and self.max_value > 999:  # every synthetic answer must be a valid AIME answer
            raise bad_value("task.max_value", self.max_value, "100..999 for synthetic AIME problems")

    @property
    def max_new_tokens(self) -> int:
        return super().max_new_tokens if self.synthetic else 1024

    def _parse(self, rec: dict, where: str) -> dict:
        return aime_row(rec, where, source=self.source or self.hf_dataset or "")

    def extract(self, text: str) -> str | None:
        v = extract_aime(text)
        return None if v is None else str(v)
