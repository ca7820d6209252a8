"""benchmarks/on_policy.py: every condition composes into the run it says it is, and passes the on-policy checks."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import on_policy as B
from stratos.distill.on_policy import scorer_for, validate_on_policy
from tests.conftest import compose_cfg

WANT = {  # condition -> (teacher kind, rate, scorer the run resolves to)
    "off_policy": ("hf", 0.0, "logits"),
    "on_policy": ("hf", 0.5, "logits"),
    "on_policy_full": ("hf", 1.0, "logits"),
    "verifier_off": ("engine", 0.0, "verifier"),
    "verifier": ("engine", 0.5, "verifier"),
}


@pytest.mark.parametrize("task", ["mahjong", "gsm8k"])
def test_each_condition_composes_into_the_run_it_describes(tmp_path, task):
    a = argparse.Namespace(n_train=64, n_val=8, n_test=8, threads=1, out=str(tmp_path), steps=10, batch=8,
                           sample_temperature=0.9, max_new_tokens=48, task=task)
    assert set(B.CONDITIONS) == set(WANT) and set(B.DEFAULT) <= set(WANT)
    assert all(c in WANT and p in WANT and WANT[c][0] == WANT[p][0] and WANT[p][1] == 0 for c, p in B.PAIRS.items())
    for cond, (kind, rate, scorer) in WANT.items():
        cfg = compose_cfg(B.run_args(a, cond, "/some/teacher", seed=3), tmp_path)
        op = cfg.strategy.alignment.on_policy
        assert (cfg.teacher.kind, op.rate, scorer_for(op, cfg.teacher.kind)) == (kind, rate, scorer), cond
        assert (op.temperature, op.max_new_tokens, cfg.seed) == (0.9, 48, 3)
        assert cfg.strategy.name == "alignment" and cfg.strategy.alignment.mode == "auto" and cfg.task.name == task
        assert cfg.trainer.max_steps == 10 and list(cfg.pipeline.stages) == ["data", "distill", "evaluate"]
        if kind == "hf":
            assert cfg.teacher.name_or_path == "/some/teacher" and cfg.student.tokenizer_from == "auto"
        validate_on_policy(cfg)  # the CLI would not refuse it
