"""On-policy (student-rollout) KD: who may score the student's samples, and the sampler a run trains with.

`strategy.alignment.on_policy` (OnPolicyConfig): with `rate` lambda > 0, each training row is replaced, with
probability lambda, by the student's own sample of its prompt (stratos/distill/rollouts.py), GKD-style
(Agarwal et al. 2024): the student learns from the states it reaches itself, so it learns to recover from its
own mistakes, which training on data sequences alone never shows it. The scorer (`on_policy.scorer`):

  logits    a white-box teacher (kind hf, same vocabulary): its live distributions at every sampled token,
            KD only on those rows (the loss and temperature of `strategy.alignment`), through the chunked
            fused loss (never a (B, T, V) tensor)
  logprobs  a served teacher (kind openai: an OpenAI-compatible server sharing the student's vocabulary): the
            server scores the sampled ids (legacy completions with echo + logprobs, or vLLM's prompt_logprobs;
            stratos/models/openai_scoring.py) and returns its top-k log-probs at every sampled position; KD only
            on those rows, the bucketed forward KL at T = 1 against top-k + one tail bucket, the offline store's
            format (stratos/distill/served_scores.py), through the chunked fused loss
  verifier  the task engine as teacher (no logits): the task judges the sample line by line (`Task.judge`)
            and the row becomes the sample's correct leading lines + the engine's continuation from the first
            wrong line (CE on all of it): on-policy correction without logits
  auto      logits for a white-box teacher, logprobs for a served one, verifier for the engine teacher

Several teachers (`teachers` + `route`) take on-policy KD when every one is white-box (kind hf, logits): a rollout
row keeps its data row's teacher (`teacher_index`), and that teacher's live logits score the sampled tokens
(stratos/distill/routing.py routed_kd with `rolled`).

A teacher that cannot score given tokens is refused before any work (one line, exit 2): the engine of a task
without a line judge (math from a dataset's prose solutions) and a student that cannot share a served teacher's
vocabulary (built from config: it trains its own tokenizer) by `validate_on_policy`; a server that does not
answer, or answers neither scoring request (or not the one `teacher.score_api` names), by `check_served_scorer`
(a probe request, when the distill stage will run). A server reading the student's ids as other text is refused
when the distill stage starts (served_scores.ServedScores.check_vocab).

This module imports no torch: the checks run on every CLI start.
"""

from __future__ import annotations

import math
from typing import Any

from stratos.errors import bad_value, check_values

KEY = "strategy.alignment.on_policy"
KIND_OF = {"logits": "hf", "verifier": "engine", "logprobs": "openai"}  # scorer -> the teacher kind that gives it
AUTO = {kind: scorer for scorer, kind in KIND_OF.items()}  # what scorer=auto resolves to for each teacher kind
WHY = {"logits": "kind {kind} gives no logits of given tokens",
       "verifier": "the verifier is the task engine: teacher=task_engine",
       "logprobs": "the logprobs scorer is an OpenAI-compatible server: teacher=openai_endpoint"}


def check_on_policy_values(op: Any) -> None:
    """Range checks of `strategy.alignment.on_policy` (UserError, one line)."""
    t = float(op.temperature)
    check_values([
        (f"{KEY}.rate", op.rate, 0.0 <= float(op.rate) <= 1.0, "0 <= rate <= 1 (the share of rows sampled by the "
                                                               "student; 0 = off)"),
        (f"{KEY}.temperature", op.temperature, t > 0 and math.isfinite(t), "a finite number > 0"),
        (f"{KEY}.max_new_tokens", op.max_new_tokens, int(op.max_new_tokens) >= 0,
         "an integer >= 0 (0 = the task's generation budget)"),
    ])


def scorer_for(op: Any, teacher_kind: str) -> str | None:
    """The scorer `op.scorer` resolves to for a teacher of `teacher_kind`; None when auto finds none."""
    if op.scorer != "auto":
        return str(op.scorer)
    return AUTO.get(str(teacher_kind))


def kind_of(teacher: Any) -> str:
    """A teacher's kind; several teachers (RoutedTeacher, kind routed) count as their members' one kind."""
    members = getattr(teacher, "members", None)
    if members:
        kinds = {str(getattr(m, "kind", "")) for m in members.values()}
        return kinds.pop() if len(kinds) == 1 else "routed"
    return str(getattr(teacher, "kind", ""))


def task_has_judge(task: Any) -> bool:
    """The task can judge a rationale line by line (Mahjong; math on generated, step-by-step rationales)."""
    return callable(getattr(task, "judge", None)) and bool(getattr(task, "has_line_judge", True))


def validate_on_policy(cfg: Any) -> None:
    """Cross-group checks of on-policy KD (strategy x teacher x task), before any work. No-op when rate is 0."""
    al = cfg.strategy.alignment
    op = al.on_policy
    if float(op.rate) == 0:
        return
    kind, name = str(cfg.teacher.kind), str(cfg.teacher.name)
    if cfg.strategy.name in ("injection", "labels_only"):
        raise bad_value(f"{KEY}.rate", op.rate, f"0 with strategy={cfg.strategy.name} (on-policy KD needs a teacher "
                                                "signal: strategy=alignment or auto)")
    teachers = cfg.get("teachers") or {}
    if teachers:  # several: each row's rollout is scored by its own teacher, which takes live logits from each
        kinds = {str(t.kind) for t in teachers.values()}
        if kinds != {"hf"} or scorer_for(op, "hf") != "logits":
            raise bad_value(f"{KEY}.rate", op.rate, "0 with several teachers unless every one is white-box (kind hf, "
                                                    "scorer auto or logits): each row's rollout is scored by its own "
                                                    "teacher's logits")
        kind, name = "hf", "+".join(sorted(teachers))
    scorer = scorer_for(op, kind)
    if scorer is None:
        raise bad_value(f"{KEY}.rate", op.rate, f"0 with teacher={name}: an {kind} teacher cannot score given tokens "
                                                "(on-policy KD needs a white-box teacher, kind hf, a served one, kind "
                                                "openai, or the task engine as verifier)")
    if KIND_OF[scorer] != kind:
        fits = AUTO.get(kind)
        raise bad_value(f"{KEY}.scorer", str(op.scorer), f"{fits + ' or ' if fits else ''}auto with teacher={name} "
                                                         f"({WHY[scorer].format(kind=kind)})")
    if scorer == "logprobs":
        if str(al.mode) not in ("auto", "sequence"):
            raise bad_value("strategy.alignment.mode", str(al.mode), "auto or sequence with on-policy KD scored by a "
                                                                     "served teacher (its text and log-probs only)")
        if not cfg.student.get("name_or_path"):
            raise bad_value("student.name_or_path", None, f"a checkpoint whose tokenizer is the served teacher's, "
                                                          f"with on-policy KD scored by teacher={name} (the server "
                                                          "scores token ids of its own vocabulary; a student built "
                                                          "from config trains its own tokenizer)")
    if scorer == "logits":
        if int(al.top_k) > 0:
            raise bad_value("strategy.alignment.top_k", al.top_k, "0 with on-policy KD (the offline store holds the "
                                                                  "teacher on the data sequences, not on the samples)")
        if str(al.mode) not in ("auto", "logit", "hidden", "cross_tokenizer"):
            raise bad_value("strategy.alignment.mode", str(al.mode), "auto, logit, hidden or cross_tokenizer with "
                                                                     "on-policy KD scored by teacher logits")
    if scorer == "verifier":
        from stratos.tasks import build_task

        task = build_task(cfg.task)
        if not task_has_judge(task):
            raise bad_value(f"{KEY}.scorer", str(op.scorer), f"logits with a white-box teacher: task {task.name} has "
                                                             "no line judge for these rationales (Mahjong and generated "
                                                             "math rationales have one; dataset prose has not)")


def check_served_scorer(cfg: Any) -> None:
    """Before a run that trains with on-policy KD scored by a served teacher: the server is reachable and scores
    given tokens the way `teacher.score_api` asks (probe requests; UserError, one line). No-op otherwise."""
    op, t = cfg.strategy.alignment.on_policy, cfg.teacher
    if float(op.rate) == 0 or cfg.get("teachers") or scorer_for(op, str(t.kind)) != "logprobs":
        return
    from omegaconf import OmegaConf

    from stratos.models.openai_teacher import OpenAITeacher
    from stratos.models.teachers import check_reachable

    check_reachable("teacher.base_url", str(t.base_url))
    args = {k: v for k, v in OmegaConf.to_container(t, resolve=True).items() if k != "_target_"}
    teacher = OpenAITeacher(**args)
    sup = teacher.scoring
    if sup.api is not None:
        return
    if str(t.score_api) != "auto" and sup.works:
        raise bad_value("teacher.score_api", str(t.score_api), f"auto or {sup.works[0]}: the server at {teacher.url} "
                                                               f"does not score that way ({sup.why()})")
    raise bad_value(f"{KEY}.rate", op.rate, f"0 with teacher={t.name}: its server at {teacher.url} scores no given "
                                            "tokens; on-policy KD needs /v1/completions with echo + logprobs or "
                                            f"vLLM's prompt_logprobs ({sup.why()})")


def describe(op: Any, scorer: str, max_new_tokens: int, mode: str = "") -> str:
    """The clause the decision's reason gets."""
    who = {"logits": "the live teacher's logits score the student's tokens (KD only on those rows)",
           "logprobs": "the served teacher's top-k log-probs score the student's tokens (KD only on those rows, "
                       "forward KL at T=1 with a tail bucket)",
           "verifier": "the task judges each sample line by line; CE on its correct lines + the engine's "
                       "continuation"}[scorer]
    if mode == "cross_tokenizer":
        who = ("the live teacher reads each sample's text in its own tokens and scores it at the aligned spans "
               "(cross-tokenizer KD only on those rows)")
    return (f"on-policy KD on lambda={float(op.rate):g} of the rows: the student samples (T={float(op.temperature):g}, "
            f"up to {max_new_tokens} new tokens), {who}")


class RowJudge:
    """The verifier scorer's judge: (dataset index, sampled text) -> (corrected text, lines right, lines judged,
    sample right to the end), with the row of each dataset index given up front."""

    def __init__(self, task: Any, rows: list[dict]) -> None:
        self.task, self.rows = task, rows

    def __call__(self, index: int, text: str) -> tuple[str, int, int, bool]:
        j = self.task.judge(self.rows[index], text)
        return j.corrected, j.correct_lines, j.judged_lines, j.all_correct


class OnPolicyPlan:
    """On-policy KD as the recipe decided it: the sampler's settings, without the run's seed and tokenizer."""

    def __init__(self, scorer: str, rate: float, temperature: float, max_new_tokens: int, judge: Any = None) -> None:
        self.scorer, self.rate, self.temperature, self.max_new_tokens = scorer, rate, temperature, max_new_tokens
        self.judge = judge  # RowJudge (verifier) or None
        self.align: Any = None  # xtok_rollouts.RolloutAligner (cross-tokenizer KD) or None
        self.scores: Any = None  # served_scores.ServedScores (logprobs) or None
        self.served: dict = {}  # logprobs: score_api, score_top_logprobs (recorded in strategy.json)

    def as_dict(self) -> dict:
        return {"rate": self.rate, "scorer": self.scorer, "temperature": self.temperature,
                "max_new_tokens": self.max_new_tokens, **self.served}

    def sampler(self, seed: int, tokenizer: Any, max_positions: int = 0):
        """The rollouts.RolloutSampler a training run uses (imports torch)."""
        from stratos.distill.rollouts import RolloutSampler

        return RolloutSampler(rate=self.rate, temperature=self.temperature, max_new_tokens=self.max_new_tokens,
                              seed=int(seed), pad_id=tokenizer.pad_token_id, eos_id=tokenizer.eos_token_id,
                              scorer=self.scorer, max_positions=int(max_positions), tokenizer=tokenizer,
                              judge=self.judge, scores=self.scores, align=self.align)


def decide_on_policy(decision: Any, op: Any, teacher: Any, task: Any) -> OnPolicyPlan | None:
    """Whether on-policy KD applies to the decided mode; the decision's reason (or refusals) and `on_policy`
    record say so. Logits need a white-box teacher's logit, hidden-state or cross-tokenizer KD (with hidden-state KD
    the teacher's hidden states on the samples join the MSE; with another vocabulary the teacher reads the sampled
    text in its own tokens, stratos/distill/xtok_rollouts.py); logprobs need a served teacher's sequence KD and a
    server that scores given tokens; the verifier needs the engine teacher's sequence KD and a task with a line
    judge. None: off-policy (rate 0, or refused)."""
    if float(op.rate) == 0:
        return None
    scorer = scorer_for(op, kind_of(teacher))
    mode = str(decision.mode)
    served = getattr(teacher, "scoring", None) if scorer == "logprobs" else None
    fits = ((scorer == "logits" and mode in ("logit", "hidden", "cross_tokenizer"))
            or (scorer == "verifier" and mode == "sequence" and task_has_judge(task))
            or (scorer == "logprobs" and mode == "sequence" and served is not None and served.api is not None))
    if not fits:
        why = {"injection": "knowledge injection has no teacher to score samples",
               "labels": "labels only"}.get(mode, f"scorer {scorer} does not fit mode {mode}")
        if scorer == "logprobs" and mode == "sequence":
            why = f"the server scores no given tokens ({served.why() if served else 'no scoring probe'})"
        decision.refused.append(f"on-policy KD refused: {why}; training off-policy")
        return None
    max_new = int(op.max_new_tokens) or int(task.max_new_tokens)
    plan = OnPolicyPlan(scorer, float(op.rate), float(op.temperature), max_new)
    if served is not None:
        plan.served = {"score_api": served.api, "score_top_logprobs": int(teacher.score_top_logprobs)}
    decision.on_policy = plan.as_dict()
    decision.reason = f"{decision.reason}; {describe(op, scorer, max_new, mode)}"
    return plan
