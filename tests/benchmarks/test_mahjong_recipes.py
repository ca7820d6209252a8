"""benchmarks/mahjong_recipes.py: each condition changes one thing of the default recipe, and the table pairs seeds."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import mahjong_recipes as R
from tests.conftest import compose_cfg

A = argparse.Namespace(steps=100, threads=1, out="/o")


@pytest.mark.parametrize("cond", [c for c in R.CONDITIONS if c != "vote8"])
def test_every_condition_composes_and_validates(cond, tmp_path):
    from stratos.checks import validate

    cfg = compose_cfg(R.overrides(A, cond, 2), tmp_path)
    validate(cfg)
    base = compose_cfg(R.overrides(A, "proof", 2), tmp_path)
    changed = {k for k in ("task", "student", "trainer") if cfg[k] != base[k]}
    assert cfg.seed == 2 and cfg.strategy.alignment.mode == "sequence"
    assert changed == {"proof": set(), "search": {"task"}, "suits": {"task"}, "flat_mix": {"task"}, "curriculum": {"task"},
                       "curriculum_rev": {"task"}, "curriculum_late": {"task"}, "bytes": {"student"},
                       "mini": {"student"}, "steps_2x": {"trainer"}, "curriculum_late_2x": {"task", "trainer"},
                       "lr_2x": {"task", "trainer"}, "lr_4x": {"task", "trainer"},
                       "lr_half": {"task", "trainer"}, "batch_32": {"task", "trainer"}}[cond]
    assert cfg.trainer.lr == {"lr_2x": 6e-3, "lr_4x": 1.2e-2, "lr_half": 1.5e-3}.get(cond, 3e-3)
    assert cfg.trainer.max_steps == (200 if cond in ("steps_2x", "curriculum_late_2x", "batch_32") else 100)
    assert cfg.trainer.batch_size == (32 if cond == "batch_32" else 64)
    if cond.startswith("curriculum") or cond.startswith("lr_"):
        shares = [st.share for st in cfg.task.curriculum]
        assert shares == {"curriculum": [1, 1], "curriculum_rev": [1, 1]}.get(cond, [3, 1])
        assert (not cfg.task.curriculum[0].wait_distribution) == (cond != "curriculum_rev")


def test_the_table_pairs_each_condition_with_proof_on_the_same_seeds():
    def run(b, n, w1):
        return {"balanced": b, "natural": n, "by": {"waits=1": w1, "waits=10": 0.0}, "train_s": 10.0, "run_s": 12.0}

    res = {"proof": {0: run(0.20, 0.50, 0.6), 1: run(0.22, 0.52, 0.6)},
           "flat_mix": {0: run(0.25, 0.40, 0.5), 1: run(0.29, 0.42, 0.7)}}
    lines = R.table(res, [0, 1]).splitlines()
    assert lines[0].split(" | ")[5:7] == ["1", "10"]  # wait counts in numeric order
    assert lines[2].startswith("| proof | 2 | 21.0 ± 1.4 % | — | 51.0 % | 60 | 0 |")
    assert lines[3].startswith("| flat_mix | 2 | 27.0 ± 2.8 % | +6.0 ± 1.4 | 41.0 % | 60 | 0 |")


def test_curriculum_late_2x_pairs_with_steps_2x_not_proof():
    def run(b):
        return {"balanced": b, "natural": 0.5, "by": {"waits=1": 0.5}, "train_s": 10.0, "run_s": 12.0}

    res = {"proof": {0: run(0.10)}, "steps_2x": {0: run(0.30)}, "curriculum_late_2x": {0: run(0.36)}}
    row = R.table(res, [0]).splitlines()[-1]
    assert row.startswith("| curriculum_late_2x | 1 | 36.0 ") and "| +6.0 ± 0.0 vs steps_2x |" in row


@pytest.mark.parametrize("fmt", ["proof", "suits"])
def test_valid_proof_lines_are_measured_on_proof_runs_only(fmt, tmp_path):
    """The engine's text verifier counts the student's `tile: groups` lines that really are hand + tile in a winning
    shape; a suits- or search-format run's lines (`Open: p`, `1p: no`) are not proofs alone, so it gets None."""
    import json

    from omegaconf import OmegaConf

    run = tmp_path / "runs" / fmt / "seed0"
    for sub in ("data", "evaluate"):
        (run / sub).mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"task": {"rationale_format": fmt}}), run / "config.yaml")
    row = {"id": "a", "hand": "3455667777888p"}  # winning tiles 2p 3p 4p 5p 6p 8p
    (run / "data" / "test.jsonl").write_text(json.dumps(row) + "\n")
    out = "2p: 234p 567p 567p 888p 77p\n6p: 345p 567p 678p 678p 77p\n9p: 345p 567p 678p 789p 77p\nAnswer: 2p 6p 9p"
    (run / "evaluate" / "predictions.jsonl").write_text(json.dumps({"id": "a", "output": out}) + "\n")
    assert R.proof_lines(str(run)) == (pytest.approx(1 / 3) if fmt == "proof" else None)  # only 2p's groups add up
