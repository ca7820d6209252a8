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
                       "curriculum_rev": {"task"}, "bytes": {"student"},
                       "mini": {"student"}, "steps_2x": {"trainer"}}[cond]
    assert cfg.trainer.max_steps == (200 if cond == "steps_2x" else 100)


def test_the_table_pairs_each_condition_with_proof_on_the_same_seeds():
    def run(b, n, w1):
        return {"balanced": b, "natural": n, "by": {"waits=1": w1, "waits=10": 0.0}, "train_s": 10.0, "run_s": 12.0}

    res = {"proof": {0: run(0.20, 0.50, 0.6), 1: run(0.22, 0.52, 0.6)},
           "flat_mix": {0: run(0.25, 0.40, 0.5), 1: run(0.29, 0.42, 0.7)}}
    lines = R.table(res, [0, 1]).splitlines()
    assert lines[0].split(" | ")[5:7] == ["1", "10"]  # wait counts in numeric order
    assert lines[2].startswith("| proof | 2 | 21.0 ± 1.4 % | — | 51.0 % | 60 | 0 |")
    assert lines[3].startswith("| flat_mix | 2 | 27.0 ± 2.8 % | +6.0 ± 1.4 | 41.0 % | 60 | 0 |")
