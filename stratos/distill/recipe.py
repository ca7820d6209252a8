"""The training recipe: from the strategy's decision to what the student trains on, with which loss.

`Strategy.decide` says how knowledge moves (alignment or injection, and the mode); `prepare_recipe`
turns that into a typed `TrainingRecipe`:

  text source     where each supervised target comes from: the data stage's verified rationale
                  (`verified`), teacher-written rationales kept when the verifier accepts them
                  (`teacher`), or the answer line alone (`answer`)
  datasets        train / val `ExampleDataset`s (+ corpus windows for injection)
  teacher source  `live` (a white-box forward per batch), `topk_store` (its top-k log-probs computed
                  once and shared, stratos/distill/teacher_store.py) or `none`
  loss            mode, alignment settings, corpus share, black-box token KD, and for cross-tokenizer
                  KD the shared vocabulary (the datasets then carry the teacher's own tokens of each
                  example and the aligned pairs, stratos/distill/token_alignment.py)

and the records the stage writes (strategy.json, preflight.json, token_kd.json, topk_store.json,
cross_tokenizer.json, and with several teachers routing.json: stratos/distill/routing.py routes each row to its
own teacher before the decision, whose probe then measures the routed teachers).
The distill stage then only fits and saves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import OmegaConf

from stratos.config import AlignmentConfig
from stratos.distill import outputs
from stratos.distill.blackbox_kd import attach_teacher_topk
from stratos.distill.examples import ExampleDataset, WithIndex, corpus_texts, supervised_texts
from stratos.distill.on_policy import RowJudge, decide_on_policy
from stratos.distill.preflight import run_preflight
from stratos.distill.routing import open_routed_stores, route_teachers, routed_supervised, token_shares
from stratos.distill.served_scores import ServedScores
from stratos.distill.slices import resolve_slices
from stratos.distill.strategy import Decision, Mode
from stratos.distill.teacher_store import open_topk_store
from stratos.distill.token_alignment import shared_vocab
from stratos.errors import UserError
from stratos.models.hub import lm_parts

log = logging.getLogger("stratos")
VOCAB_CHECK_ROWS = 4  # training questions a served on-policy teacher scores to show it reads the student's ids


class TextSource(StrEnum):
    verified = "verified"  # the verified rationale the data stage wrote (built backwards from the answer)
    teacher = "teacher"  # teacher-written rationales, rejection-sampled by the task's verifier
    answer = "answer"  # the verified answer line only


class TeacherSource(StrEnum):
    none = "none"  # no teacher signal in the loss
    live = "live"  # white-box teacher forward on every batch
    topk_store = "topk_store"  # its top-k log-probs, computed once per (weights, tokens, k, T) and shared


def text_source(mode: Mode, target: str) -> TextSource:
    """Where the supervised targets of `mode` come from (`strategy.target=answer` overrides)."""
    if mode == Mode.labels or target == "answer":
        return TextSource.answer
    return TextSource.teacher if mode == Mode.sequence else TextSource.verified


@dataclass
class LossSpec:
    mode: Mode
    alignment: AlignmentConfig
    corpus_weight: float = 0.0  # the corpus' share of the loss (injection with a corpus), else 0
    blackbox_topk: bool = False  # sequence KD: token-level KD from the black-box teacher's top-k logprobs
    shared_vocab: Any = None  # cross_tokenizer: token_alignment.SharedVocab (teacher id <-> student id)


@dataclass
class TrainingRecipe:
    decision: Decision
    text_source: TextSource
    teacher_source: TeacherSource
    train: Any  # ExampleDataset, or WithIndex(ExampleDataset) with an offline top-k store
    val: Any
    loss: LossSpec
    topk: dict = field(default_factory=dict)  # split -> TopKReader (teacher_source == topk_store)
    stats: dict = field(default_factory=dict)  # kept / rejected teacher rationales
    records: dict[str, dict] = field(default_factory=dict)  # file name -> JSON the stage writes
    on_policy: Any = None  # on_policy.OnPolicyPlan: a share of the rows sampled by the student (None = off-policy)

    @property
    def base_train(self) -> ExampleDataset:
        return self.train.dataset if isinstance(self.train, WithIndex) else self.train


def prepare_recipe(strategy, cfg, task, teacher, student, train_rows: list[dict],
                   val_rows: list[dict], server=None) -> TrainingRecipe:
    """Decide (probe the teacher) and build the datasets, loss and teacher source for that decision."""
    al: AlignmentConfig = OmegaConf.to_object(cfg.strategy.alignment)
    inj, tr = cfg.strategy.injection, cfg.trainer
    routing = route_teachers(cfg, task, teacher, train_rows, val_rows, server)  # several teachers: each row's own
    texts = routed_supervised if routing else supervised_texts
    pf = run_preflight(student, teacher, max_seq_len=0, dtype=cfg.student.dtype)  # vocab check before deciding
    decision = strategy.decide(teacher, task, val_rows, pf.same_vocab, pf.vocab_reason,
                               cross_tokenizer=pf.logit_kd == "cross-tokenizer logit KD" and routing is None)
    on_policy = decide_on_policy(decision, al.on_policy, teacher, task)  # before the record: reason + settings
    if on_policy is not None and on_policy.scorer == "logprobs":  # a served teacher scores the rollouts
        on_policy.scores = ServedScores(teacher, student.tokenizer)
        decision.on_policy["vocab_check"] = on_policy.scores.check_vocab(  # refuses another vocabulary (UserError)
            [student.tokenizer(r["question"])["input_ids"] for r in train_rows[:VOCAB_CHECK_ROWS]])
    records: dict[str, dict] = {outputs.STRATEGY_JSON: decision.as_dict()}

    source = text_source(decision.mode, strategy.target)
    rules_in_prompt = bool(inj.rules_in_prompt) and decision.name == "injection"
    sup, stats = texts(source, task, train_rows, teacher, rules_in_prompt, verify=bool(al.verify),
                       n_samples=int(al.n_samples))
    if not sup:
        raise UserError(f"the teacher produced no verified rationale for {len(train_rows)} training items "
                        f"(allowed: strategy=injection or strategy=labels_only, or a stronger teacher)")
    blackbox = False
    if decision.mode == Mode.sequence:
        token_kd = attach_teacher_topk(student.tokenizer, sup, int(getattr(teacher, "top_logprobs", 0) or 0),
                                       enabled=bool(al.blackbox_kd))
        records[outputs.TOKEN_KD_JSON] = token_kd.as_dict()
        blackbox = bool(token_kd.used)
        if blackbox and al.loss != "forward_kl":
            log.warning("black-box token KD uses forward_kl at T=1 (top-k log-probs), not %s", al.loss)
    corpus = corpus_texts(task, list(inj.corpus_paths)) if decision.mode == Mode.injection else []
    max_len = int(cfg.student.arch.max_position) if not cfg.student.name_or_path else 2048
    cross = decision.mode == Mode.cross_tokenizer
    xtok = dict(teacher_tokenizer=teacher.tokenizer, teacher_max_len=pf.teacher_context or max_len) if cross else {}
    train = ExampleDataset(student.tokenizer, sup, corpus, float(inj.corpus_weight), max_len, int(cfg.seed),
                           corpus_window=int(inj.corpus_window), **xtok)
    # validation: verified rationales also for sequence KD (teacher text may be missing for val rows)
    val_source = TextSource.verified if source == TextSource.teacher else source
    val_sup, _ = texts(val_source, task, val_rows, teacher, rules_in_prompt)
    val = ExampleDataset(student.tokenizer, val_sup, [], 0.0, max_len, int(cfg.seed), **xtok)
    records[outputs.PREFLIGHT_JSON] = run_preflight(student, teacher, max_seq_len=train.max_len,
                                                    dtype=cfg.student.dtype).as_dict()
    shared = None
    if cross and on_policy is not None:  # the teacher reads each sample's text in its own tokens
        from stratos.distill.xtok_rollouts import RolloutAligner

        on_policy.align = RolloutAligner(student.tokenizer, teacher.tokenizer, xtok["teacher_max_len"])
    if cross:
        shared = shared_vocab(student.tokenizer, teacher.tokenizer, lm_parts(student.model)[1].weight.shape[0],
                              lm_parts(teacher.model)[1].weight.shape[0])
        records[outputs.CROSS_TOKENIZER_JSON] = cross_tokenizer_record(shared, train, val, al)

    if routing:
        routing.token_shares = token_shares(train, teacher.ids)
        routing.kept = stats.get("by_teacher", {})  # sequence KD: each teacher's kept / rejected rationales
        records[outputs.ROUTING_JSON] = routing.as_dict()
        records[outputs.STRATEGY_JSON]["routing"] = {k: routing.as_dict()[k] for k in ("by", "reason", "assignment")}
        if routing.cost:  # route=auto: the teacher work in USD, against route.budget_usd
            records[outputs.STRATEGY_JSON]["routing"].update(
                {k: routing.cost[k] for k in ("usd", "budget_usd", "unconstrained_usd")})
    live = (Mode.logit, Mode.hidden, Mode.cross_tokenizer)
    teacher_source = TeacherSource.live if decision.mode in live else TeacherSource.none
    topk: dict = {}
    if int(al.top_k) > 0 and decision.mode == Mode.logit:
        # offline teacher: its top-k log-probs for these exact token sequences, computed once per
        # (teacher weights, data, k, T) and shared by every run of a sweep; no teacher forward in training.
        # Several teachers: one store per teacher over its own rows (stratos/distill/routing.py)
        topk_stats = {}
        for split, ds in (("train", train), ("val", val)):
            model = teacher.members[teacher.ids[0]].model if routing else teacher.model
            kw = dict(cache_root=cfg.paths.cache, k=int(al.top_k), temperature=float(al.temperature),
                      pad_id=student.tokenizer.pad_token_id, batch_size=int(tr.batch_size),
                      length_slices=resolve_slices(int(tr.length_slices), str(model.dtype))[0])
            if routing:
                topk[split], topk_stats[split] = open_routed_stores(teacher, ds, split, **kw)
            else:
                topk[split], topk_stats[split] = open_topk_store(teacher, ds, what=split, **kw)
        records[outputs.TOPK_STORE_JSON] = topk_stats
        train, val, teacher_source = WithIndex(train), WithIndex(val), TeacherSource.topk_store
    elif int(al.top_k) > 0:
        log.warning("strategy.alignment.top_k=%d unused: the decided mode is %s, not logit KD", int(al.top_k),
                    decision.mode)
    if on_policy is not None and on_policy.scorer == "verifier":  # the judge finds each row by its dataset index
        by_question = {r["question"]: r for r in train_rows}
        on_policy.judge = RowJudge(task, [by_question[e.prompt] for e in sup])
        train = train if isinstance(train, WithIndex) else WithIndex(train)
    loss = LossSpec(decision.mode, al, float(inj.corpus_weight) if corpus else 0.0, blackbox, shared)
    return TrainingRecipe(decision, source, teacher_source, train, val, loss, topk, stats, records, on_policy)


def cross_tokenizer_record(shared, train: ExampleDataset, val: ExampleDataset, al: AlignmentConfig) -> dict:
    """cross_tokenizer.json: the shared vocabulary and how much of the supervised text was aligned."""
    def split(ds: ExampleDataset) -> dict:
        c = dict(ds.xtok_counts)
        c["aligned_share"] = round(c.get("aligned", 0) / max(1, c.get("supervised", 0)), 4)
        return c

    x = al.cross_tokenizer
    return {"method": "spans of equal text aligned by character offsets; shared_weight * T^2 * divergence on "
                      f"renormalised shared-token distributions + uld_weight * ULD (sorted L1) over {x.uld_over} "
                      "probabilities",
            "student_vocab": shared.student_size, "teacher_vocab": shared.teacher_size, "shared_tokens": len(shared),
            "shared_weight": float(x.shared_weight), "uld_weight": float(x.uld_weight), "uld_over": str(x.uld_over),
            "train": split(train), "val": split(val)}
