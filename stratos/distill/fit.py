"""Fit a student on a `TrainingRecipe` with Lightning: the module, the loaders, the trainer, resume.

ResumableLoader makes the data order a function of (seed, epoch, batches done), so a resumed or
requeued run sees exactly the batches an uninterrupted one would; under DDP each rank gets its slice
of the same global batch (so DDP reproduces the one-process loss curve).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from stratos.distill.curriculum import curriculum_phases
from stratos.distill.examples import collate
from stratos.distill.module import DistillModule
from stratos.distill.recipe import TeacherSource, TrainingRecipe
from stratos.distill.routing import teacher_manifest
from stratos.distill.slices import resolve_slices
from stratos.distill.loggers import build_logger, run_params
from stratos.distill.trainer import StepMetrics
from stratos.resilience.checkpoints import latest_checkpoint
from stratos.resilience.loader import ResumableLoader

log = logging.getLogger("stratos")


@dataclass
class FitResult:
    trainer: Any  # lightning.Trainer after fit
    stats: StepMetrics  # tokens, padding shares, last loss
    seconds: float
    length_slices: int
    curriculum: list[tuple[int, int]]  # (items, steps) per curriculum stage in training order; [] = none


def build_module(cfg: DictConfig, student, teacher, recipe: TrainingRecipe, length_slices: int) -> DistillModule:
    tr, loss = cfg.trainer, recipe.loss
    return DistillModule(student.model, loss.mode, loss.alignment, lr=float(tr.lr), weight_decay=float(tr.weight_decay),
                         warmup_steps=int(tr.warmup_steps), max_steps=int(tr.max_steps), topk=recipe.topk,
                         teacher=teacher if recipe.teacher_source == TeacherSource.live else None,
                         corpus_weight=loss.corpus_weight, blackbox_topk=loss.blackbox_topk,
                         length_slices=length_slices, shared_vocab=loss.shared_vocab,
                         teacher_manifest=teacher_manifest(teacher),
                         on_policy=recipe.on_policy and recipe.on_policy.sampler(
                             int(cfg.seed), student.tokenizer, getattr(student.model.config, "max_position_embeddings", 0)))


def loaders(cfg: DictConfig, recipe: TrainingRecipe, pad_id: int):
    """(train, val) loaders: train resumable and seeded; val plain and unpadded (exact val loss under DDP)."""
    tr = cfg.trainer
    per_device = max(1, int(tr.batch_size) // max(1, int(tr.devices)))
    val = torch.utils.data.DataLoader(recipe.val, batch_size=per_device, shuffle=False, collate_fn=collate(pad_id))
    train = ResumableLoader(
        recipe.train, per_device, shuffle=True, seed=int(cfg.seed), drop_last=len(recipe.train) >= int(tr.batch_size),
        collate_fn=collate(pad_id, recipe.base_train.topk_k), num_workers=int(tr.num_workers),
        lengths=recipe.train.lengths if bool(tr.group_by_length) else None,
        phases=curriculum_phases(recipe.train.stages, int(tr.max_steps)))  # rows tagged with stages: in stage order
    return train, val


def fit(cfg: DictConfig, ckpt_dir: str, logs_dir: str | None, student, teacher, recipe: TrainingRecipe) -> FitResult:
    """Train until `trainer.max_steps` (or `max_minutes`), resuming from the last checkpoint in `ckpt_dir`;
    step metrics go to the `logger` group's logger, writing under `logs_dir` (None with logger=none)."""
    tr = cfg.trainer
    slices, why = resolve_slices(int(tr.length_slices), str(tr.precision), str(tr.distributed))
    log.info("length slices: %d (%s)", slices, why)
    module = build_module(cfg, student, teacher, recipe, slices)
    train, val = loaders(cfg, recipe, student.tokenizer.pad_token_id)
    logger = build_logger(cfg.logger, logs_dir)
    if logger:
        logger.log_hyperparams(run_params(cfg))
    trainer, stats = instantiate(cfg.trainer, ckpt_dir=ckpt_dir, logger=logger,  # build_trainer
                                 log_every_n_steps=int(cfg.logger.log_every_n_steps))
    resume = latest_checkpoint(ckpt_dir)
    if resume:
        log.info("resuming distill from %s", resume)
    t0 = time.time()
    trainer.fit(module, train, val, ckpt_path=resume)
    phases = [(len(pool), b) for pool, b in train.resumable_sampler.phases]
    return FitResult(trainer, stats, time.time() - t0, slices, phases)

