"""Distill stage: decide the strategy, build examples, train the student with Lightning, save it.

Outputs:
  model/            merged HF checkpoint + tokenizer (save_pretrained; loads in transformers 4.x and 5.x)
  checkpoints/      Lightning checkpoints step_{step:06d}.ckpt + last.ckpt (a re-run resumes from last.ckpt)
  strategy.json     the decision: name, mode, reason, teacher probe accuracy, features, refusals
  preflight.json    vocab / context / memory checks
  train_log.jsonl   loss curve (step, loss, lr) for reports and DDP/resume comparisons
  topk_store.json   with strategy.alignment.top_k > 0: where the teacher's top-k log-probs live
                    (shared cache, see stratos/distill/teacher_store.py) and their bytes/token
  token_kd.json     sequence KD from a black-box teacher: whether its top-k logprobs became token-level
                    KD targets, for how many rationales, or why not (stratos/distill/blackbox_kd.py)
"""

from __future__ import annotations

import copy
import logging
import time

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from stratos import artifacts
from stratos.artifacts import Manifest, StageContext
from stratos.distill.blackbox_kd import attach_teacher_topk
from stratos.distill.examples import ExampleDataset, WithIndex, collate, corpus_texts, supervised_texts
from stratos.distill.module import DistillModule
from stratos.distill.preflight import run_preflight
from stratos.distill.slices import resolve_slices
from stratos.distill.teacher_store import open_topk_store
from stratos.distill.trainer import build_trainer
from stratos.resilience.checkpoints import latest_checkpoint
from stratos.resilience.loader import ResumableLoader
from stratos.errors import UserError
from stratos.models.tokenizer import save_tokenizer
from stratos.tasks import build_task

log = logging.getLogger("stratos")


def build_teacher(cfg: DictConfig):
    if cfg.teacher.kind == "engine" and cfg.teacher.name not in ("task_engine", f"{cfg.task.name}_engine"):
        raise UserError(f"invalid value for 'teacher': {cfg.teacher.name!r} is the rules engine of another task "
                        f"(allowed for +task={cfg.task.name}: task_engine, or an hf or openai teacher)")
    return instantiate(cfg.teacher, _convert_="all")


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    task = build_task(cfg.task)
    data = ctx.input("data")
    train_rows = artifacts.read_jsonl(data.path("train.jsonl"))
    val_rows = artifacts.read_jsonl(data.path("val.jsonl"))
    teacher = build_teacher(cfg)
    strategy = instantiate(cfg.strategy, _convert_="all")

    # the student's tokenizer is trained on what it will read and write (questions, rationales, rules)
    texts = [r["question"] for r in train_rows] + [task.rationale(r) for r in train_rows[:2000]] + [task.corpus()]
    white_box = "logits" in getattr(teacher, "capabilities", ())
    student = instantiate(cfg.student, train_texts=texts, seed=int(cfg.seed), _convert_="all",
                          teacher_tokenizer=getattr(teacher, "tokenizer", None) if white_box else None)
    pf = run_preflight(student, teacher, max_seq_len=0, dtype=cfg.student.dtype)  # vocab check before deciding
    decision = strategy.decide(teacher, task, val_rows, pf.same_vocab, pf.vocab_reason)
    ctx.write_json("strategy.json", decision.as_dict())

    rules_in_prompt = bool(cfg.strategy.injection.rules_in_prompt) and decision.name == "injection"
    al = cfg.strategy.alignment
    sup, seq_stats = supervised_texts(decision, task, train_rows, teacher, strategy.target, rules_in_prompt,
                                      verify=bool(al.verify), n_samples=int(al.n_samples))
    if not sup:
        raise UserError(f"the teacher produced no verified rationale for {len(train_rows)} training items "
                        f"(allowed: strategy=injection or strategy=labels_only, or a stronger teacher)")
    token_kd = None
    if decision.mode == "sequence":
        token_kd = attach_teacher_topk(student.tokenizer, sup, int(getattr(teacher, "top_logprobs", 0) or 0),
                                       enabled=bool(al.blackbox_kd))
        ctx.write_json("token_kd.json", token_kd.as_dict())
        if token_kd.used and al.loss != "forward_kl":
            log.warning("black-box token KD uses forward_kl at T=1 (top-k log-probs), not %s", al.loss)
    corpus = corpus_texts(task, list(cfg.strategy.injection.corpus_paths)) if decision.mode == "injection" else []
    max_len = int(cfg.student.arch.max_position) if not cfg.student.name_or_path else 2048
    inj = cfg.strategy.injection
    train_ds = ExampleDataset(student.tokenizer, sup, corpus, float(inj.corpus_weight), max_len, int(cfg.seed),
                              corpus_window=int(inj.corpus_window))
    val_sup, _ = supervised_texts(decision if decision.mode != "sequence" else _as_labels(decision), task,
                                  val_rows, teacher, strategy.target, rules_in_prompt)
    val_ds = ExampleDataset(student.tokenizer, val_sup, [], 0.0, max_len, int(cfg.seed))
    pf = run_preflight(student, teacher, max_seq_len=train_ds.max_len, dtype=cfg.student.dtype)
    ctx.write_json("preflight.json", pf.as_dict())

    tr = cfg.trainer
    topk, topk_stats = {}, {}
    if int(al.top_k) > 0 and decision.mode == "logit":
        # offline teacher: its top-k log-probs for these exact token sequences, computed once per
        # (teacher weights, data, k, T) and shared by every run of a sweep; no teacher forward in training
        for split, ds in (("train", train_ds), ("val", val_ds)):
            topk[split], topk_stats[split] = open_topk_store(
                teacher, ds, cache_root=cfg.paths.cache, k=int(al.top_k), temperature=float(al.temperature),
                pad_id=student.tokenizer.pad_token_id, batch_size=int(tr.batch_size), what=split,
                length_slices=resolve_slices(int(tr.length_slices), str(teacher.model.dtype))[0])
        ctx.write_json("topk_store.json", topk_stats)
        train_ds, val_ds = WithIndex(train_ds), WithIndex(val_ds)
    elif int(al.top_k) > 0:
        log.warning("strategy.alignment.top_k=%d unused: the decided mode is %s, not logit KD", int(al.top_k),
                    decision.mode)
    per_device = max(1, int(tr.batch_size) // max(1, int(tr.devices)))
    val_loader = torch.utils.data.DataLoader(  # plain and unpadded: exact val loss also under DDP
        val_ds, batch_size=per_device, shuffle=False, collate_fn=collate(student.tokenizer.pad_token_id))
    # ResumableLoader: the data order is a function of (seed, epoch, batches done), so a resumed or
    # requeued run sees exactly the batches an uninterrupted one would; under DDP each rank gets its
    # slice of the same global batch (so DDP reproduces the 1-process loss curve)
    make_loader = lambda ds, shuffle: ResumableLoader(  # noqa: E731
        ds, per_device, shuffle=shuffle, seed=int(cfg.seed), drop_last=shuffle and len(ds) >= tr.batch_size,
        collate_fn=collate(student.tokenizer.pad_token_id, _base(ds).topk_k if shuffle else 0),
        num_workers=int(tr.num_workers),
        lengths=ds.lengths if bool(tr.group_by_length) and shuffle else None)
    slices, why = resolve_slices(int(tr.length_slices), str(tr.precision), str(tr.strategy))
    log.info("length slices: %d (%s)", slices, why)
    module = DistillModule(student.model, decision.mode, dict(cfg.strategy.alignment), lr=float(tr.lr),
                           weight_decay=float(tr.weight_decay), warmup_steps=int(tr.warmup_steps),
                           max_steps=int(tr.max_steps), topk=topk,
                           teacher=teacher if decision.mode in ("logit", "hidden") and not topk else None,
                           corpus_weight=float(inj.corpus_weight) if corpus else 0.0,
                           blackbox_topk=bool(token_kd and token_kd.used), length_slices=slices)
    ckpt_dir = ctx.local_dir("checkpoints")
    trainer, curve = build_trainer(cfg, ckpt_dir, ctx.path("train_log.jsonl"))
    resume = latest_checkpoint(ckpt_dir)
    if resume:
        log.info("resuming distill from %s", resume)
    t0 = time.time()
    trainer.fit(module, make_loader(train_ds, True), val_loader, ckpt_path=resume)
    seconds = time.time() - t0

    metrics = {
        "distill/steps": int(trainer.global_step),
        "distill/seconds": round(seconds, 2),
        "distill/train/examples": len(train_ds),
        "distill/train/corpus_examples": _base(train_ds).n_corpus,
        "distill/train/loss": curve.last("train/loss"),
        "distill/val/loss": _metric(trainer, "val/loss"),
        "distill/tokens_per_s": round(curve.tokens / max(seconds, 1e-9), 1),
        "distill/padding_share": curve.padding_share,
        "distill/computed_padding_share": curve.computed_padding_share,
        "distill/length_slices": slices,
        "distill/student_params": student.n_params,
        "distill/trainable_params": student.n_trainable,
        "strategy/name": decision.name,
        "strategy/mode": decision.mode,
        "strategy/kept": seq_stats.get("kept"),
        "strategy/rejected": seq_stats.get("rejected"),
    }
    if token_kd is not None:
        metrics["strategy/token_kd"] = token_kd.used
        metrics["strategy/token_kd_aligned"] = token_kd.aligned
    if topk_stats:
        metrics["distill/topk/bytes_per_token"] = topk_stats["train"]["bytes_per_token"]
        metrics["distill/topk/written"] = topk_stats["train"]["written"]
        metrics["distill/topk/seconds"] = topk_stats["train"]["seconds"] + topk_stats["val"]["seconds"]
    if trainer.is_global_zero:
        if student.peft_method == "lora":  # for multi-LoRA serving: the adapter and its base, before merging
            student.model.save_pretrained(ctx.local_dir("adapter"))
            base = copy.deepcopy(student.model).unload()
            base.save_pretrained(ctx.local_dir("base_model"))
            save_tokenizer(student.tokenizer, ctx.local_dir("base_model"))
        out = ctx.local_dir("model")
        model = student.merged()
        model.save_pretrained(out)
        save_tokenizer(student.tokenizer, out)
    return ctx.manifest(metrics=metrics)


def _base(ds) -> ExampleDataset:
    return ds.dataset if isinstance(ds, WithIndex) else ds


def _as_labels(decision):
    """Validation for sequence KD uses verified rationales (teacher text may be missing for val rows)."""
    from dataclasses import replace

    return replace(decision, mode="injection")


def _metric(trainer, key: str):
    v = trainer.callback_metrics.get(key)
    return round(float(v), 5) if v is not None else None

