"""Data stage: the task writes train/val/test JSONL (synthesised, or read from `task.source`).

Outputs (names in stratos/data/outputs.py): train.jsonl, val.jsonl, test.jsonl, corpus.txt (domain
knowledge for injection), stats.json. Each row carries its verified `rationale`: the distill stage
trains on the rows as written here.
"""

from __future__ import annotations

import collections
import logging

from omegaconf import DictConfig

from stratos.artifacts import Manifest, StageContext
from stratos.data.outputs import CORPUS_TXT, SPLIT_FILES, STATS_JSON
from stratos.tasks import build_task

log = logging.getLogger("stratos")
SPLITS = ("train", "val", "test")


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    task = build_task(cfg.task)
    splits = task.build_splits()
    ids = [set(r["id"] for r in splits[s]) for s in SPLITS]
    overlap = (ids[0] & ids[1]) | (ids[0] & ids[2]) | (ids[1] & ids[2])
    if overlap:  # a task bug, not a user error: leaking test items into training would inflate accuracy
        raise RuntimeError(f"task '{task.name}' put {len(overlap)} items in two splits")
    metrics: dict = {}
    stats: dict = {}
    for s in SPLITS:
        ctx.write_jsonl(SPLIT_FILES[s], splits[s])
        metrics[f"data/{s}/n"] = len(splits[s])
        stats[s] = dict(sorted(collections.Counter(r.get("difficulty", "all") for r in splits[s]).items()))
    ctx.write_text(CORPUS_TXT, task.corpus())
    synthetic = all(r.get("synthetic", cfg.task.get("source") is None) for s in SPLITS for r in splits[s])
    ctx.write_json(STATS_JSON, {"task": task.name, "difficulty": stats, "synthetic": synthetic})
    log.info("data: %s", ", ".join(f"{s}={len(splits[s])}" for s in SPLITS))
    return ctx.manifest(metrics=metrics)
