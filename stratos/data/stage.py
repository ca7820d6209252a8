"""Data stage: the task writes train/val/test JSONL (synthesised, or read from `task.source`).

Outputs (names in stratos/data/outputs.py): train.jsonl, val.jsonl, test.jsonl, any extra test split the
task returns as test_<label>.jsonl (Mahjong: test_natural.jsonl or test_balanced.jsonl), corpus.txt (domain
knowledge for injection), stats.json (rows per difficulty and split; `test_distribution` names the mix of
each test split when the task has that option). Each row carries its verified `rationale`: the distill
stage trains on the rows as written here.
"""

from __future__ import annotations

import collections
import itertools
import logging

from omegaconf import DictConfig

from stratos.artifacts import Manifest, StageContext
from stratos.data.outputs import CORPUS_TXT, STATS_JSON, split_file
from stratos.tasks import bucket_order, build_task

log = logging.getLogger("stratos")
SPLITS = ("train", "val", "test")


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    task = build_task(cfg.task)
    splits = task.build_splits()
    names = [*SPLITS, *sorted(s for s in splits if s.startswith("test_"))]
    ids = [set(r["id"] for r in splits[s]) for s in names]
    overlap = set().union(*(a & b for a, b in itertools.combinations(ids, 2)))
    if overlap:  # a task bug, not a user error: leaking test items into training would inflate accuracy
        raise RuntimeError(f"task '{task.name}' put {len(overlap)} items in two splits")
    metrics: dict = {}
    stats: dict = {}
    for s in names:
        ctx.write_jsonl(split_file(s), splits[s])
        metrics[f"data/{s}/n"] = len(splits[s])
        n_by = collections.Counter(r.get("difficulty", "all") for r in splits[s])
        stats[s] = {b: n_by[b] for b in bucket_order(n_by)}
    ctx.write_text(CORPUS_TXT, task.corpus())
    synthetic = all(r.get("synthetic", cfg.task.get("source") is None) for s in names for r in splits[s])
    mix = getattr(task, "test_distribution", None)
    tests = {s: s.split("_", 1)[1] if "_" in s else mix for s in names if s.startswith("test")}
    ctx.write_json(STATS_JSON, {"task": task.name, "difficulty": stats, "synthetic": synthetic,
                                "test_distribution": tests if mix and not cfg.task.get("source") else None})
    log.info("data: %s", ", ".join(f"{s}={len(splits[s])}" for s in names))
    return ctx.manifest(metrics=metrics)
