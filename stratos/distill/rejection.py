r"""Black-box sequence-level distillation data: teacher rationales, rejection-sampled by the task's verifier.

For each row the teacher writes a step-by-step rationale for `row["question"]` (optionally with the
task's rules, `task.corpus()`, in front: knowledge injection into the *teacher* prompt; the student is
still trained on the bare question). With `verify=True` a rationale is kept only if
`task.is_correct(row, text)`; a row whose draw is wrong (or failed) is asked again, up to `n_samples`
draws in all. That is rejection sampling from the teacher restricted to correct answers,

$$ \tilde p_T(y \mid x) \propto p_T(y \mid x)\, \mathbb{1}[\mathrm{correct}(x, y)], $$

so the student imitates only the teacher's correct reasoning (sequence-level KD, Kim & Rush 2016, with
the STaR-style filter of Zelikman et al. 2022). Draw 0 uses the teacher's own temperature (greedy by
default); draws 1.. are independent samples (`sample=i`, sent as the request seed) at
`resample_temperature` when the teacher is greedy, since re-asking a greedy teacher repeats its answer.
Each draw goes through the teacher's response cache, so a killed run resumes without paying twice.

Outcome per row: kept (a verified rationale), rejected (every draw answered, none correct), or failed
(no draw came back at all: the server errors are in the teacher log).
"""

from __future__ import annotations

import logging
from typing import Any

from stratos.tasks.base import Task
from stratos.errors import UserError, bad_value
from stratos.models.teacher import ask, rules_prompt

log = logging.getLogger(__name__)


def teacher_prompt(task: Task, row: dict, rules_in_prompt: bool) -> str:
    return rules_prompt(task, row["question"]) if rules_in_prompt else row["question"]


def sequence_distillation_rows(
    teacher: Any,
    task: Task,
    rows: list[dict],
    *,
    verify: bool,
    n_samples: int,
    rules_in_prompt: bool = False,
    resample_temperature: float = 0.7,
    cache_dir: str | None = None,
) -> tuple[list[dict], dict[str, Any]]:
    """(kept_rows, stats). A kept row is a copy of its input row with `rationale` = the teacher's text,
    `rationale_source` = "teacher:<name>" and `rationale_draws` = draws it took; input order is kept.
    When the teacher returned logprobs, the row also has `teacher_logprobs` = (tokens, top) of that
    draw (stratos/distill/blackbox_kd.py turns them into token-level KD targets).

    stats: kept, rejected, failed (rows), draws (teacher answers requested), acceptance (kept / rows).
    Teachers with `generate` (OpenAITeacher) get `n_samples` draws; deterministic teachers with only
    `answer` (engine, HF greedy) get one, since more draws would repeat it.
    """
    if int(n_samples) < 1:
        raise bad_value("n_samples", n_samples, "an integer >= 1")
    if float(resample_temperature) <= 0:
        raise bad_value("resample_temperature", resample_temperature, "a number > 0")
    prompts = [teacher_prompt(task, r, rules_in_prompt) for r in rows]
    draws_allowed = int(n_samples) if verify else 1
    if not hasattr(teacher, "generate") and draws_allowed > 1:
        log.info("teacher %s is deterministic: one draw per row instead of %d", teacher.name, draws_allowed)
        draws_allowed = 1

    texts: dict[int, tuple[str, int, Any]] = {}  # row index -> (accepted text, draws it took, logprobs)
    answered: set[int] = set()  # rows for which at least one draw came back (accepted or not)
    pending = list(range(len(rows)))
    draws = 0
    for draw in range(draws_allowed):
        if not pending:
            break
        outs = _draw(teacher, task, [rows[i] for i in pending], [prompts[i] for i in pending], draw,
                     rules_in_prompt, resample_temperature, cache_dir)
        draws += len(pending)
        still = []
        for i, (text, error, logprobs) in zip(pending, outs):
            if error is not None:
                still.append(i)
                continue
            answered.add(i)
            if not verify or task.is_correct(rows[i], text):
                texts[i] = (text.strip(), draw + 1, logprobs)
            else:
                still.append(i)
        pending = still
        log.info("sequence KD draw %d/%d: %d kept so far, %d rows still without a verified rationale",
                 draw + 1, draws_allowed, len(texts), len(pending))

    name = getattr(teacher, "name", type(teacher).__name__)
    kept = [dict(rows[i], rationale=texts[i][0], rationale_source=f"teacher:{name}", rationale_draws=texts[i][1],
                 **({"teacher_logprobs": texts[i][2]} if texts[i][2] is not None else {}))
            for i in sorted(texts)]
    failed = sum(1 for i in pending if i not in answered)
    stats = {"kept": len(kept), "rejected": len(pending) - failed, "failed": failed, "draws": draws,
             "acceptance": round(len(kept) / len(rows), 4) if rows else 0.0}
    log.info("sequence KD: kept %d / %d teacher rationales (rejected %d, failed %d, %d draws)",
             stats["kept"], len(rows), stats["rejected"], stats["failed"], draws)
    return kept, stats


def _draw(teacher, task: Task, rows: list[dict], prompts: list[str], draw: int, rules_in_prompt: bool,
          resample_temperature: float, cache_dir: str | None) -> list[tuple[str, str | None, Any]]:
    """One draw for each row: [(text, error or None, (tokens, top) logprobs or None)]."""
    if not hasattr(teacher, "generate"):
        return [(a.text or "", a.error, None) for a in ask(teacher, task, rows, rules_in_prompt=rules_in_prompt)]
    kwargs: dict[str, Any] = {"cache_dir": cache_dir}

    def triple(o):
        return o.text or "", o.error, (o.tokens, o.top_logprobs) if getattr(o, "tokens", None) else None
    if draw == 0:  # every row failing here means the server is unusable: the UserError stops the stage
        return [triple(o) for o in teacher.generate(prompts, **kwargs)]
    greedy = float(getattr(teacher, "temperature", 0.0)) == 0.0
    kwargs.update(sample=draw, temperature=resample_temperature if greedy else None)
    try:
        return [triple(o) for o in teacher.generate(prompts, **kwargs)]
    except UserError as e:
        # A redraw of a few leftover rows can fail as a whole (say one prompt the server always rejects):
        # those rows count as failed; the rationales already kept stay good.
        log.warning("sequence KD draw %d: %s", draw + 1, e)
        return [("", str(e), None)] * len(prompts)
