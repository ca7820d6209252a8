"""benchmarks/deployment_score.py: the pieces that turn plans into runs and measurements into scores."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import deployment_score as B
from tests.conftest import compose_cfg


def test_a_plan_becomes_a_run_with_every_decision_pinned():
    base = [*B.BASE, "planner.history=null", "constraints.deadline_h=0.02"]
    cfg, plans = B.initial_plans(base)
    assert set(plans) == set(B.KINDS)
    for p in plans.values():
        pins = B.pins_of(cfg, p)
        applied = compose_cfg([*base, *pins])
        assert applied.student.name == p["student"] and applied.servers.run_server == p["server"]
        assert applied.trainer.max_steps >= 1
    # plans that coincide share one key (they run once)
    keys = {B.key_of(p) for p in plans.values()}
    assert 1 <= len(keys) <= len(plans)


def test_scores_and_errors():
    rows = [{"accuracy": 0.6, "latency_ms_per_token": 1.0, "train_hours": 0.02, "cost_usd": 0.002},
            {"accuracy": 0.3, "latency_ms_per_token": 1.0, "train_hours": 0.005, "cost_usd": 0.0005}]
    w = {"accuracy": 1.0, "latency": 0.0, "train_time": 0.0, "cost": 0.0}
    s = B.scores(rows, w)
    assert s[0] > s[1] and np.all((0 <= s) & (s <= 1))
    assert B.rel_err(1.2, 1.0) == pytest.approx(0.2)


def test_errors_after_n_runs():
    e = [0.5, 0.3, float("nan"), 0.2, 0.1, 0.9, 0.15]
    assert B.errors_after(e, 0) == 0.5 and B.errors_after(e, 1) == 0.3
    assert B.errors_after(e, 3) == pytest.approx(0.175)  # median of 0.2, 0.1, 0.9, 0.15
    assert np.isnan(B.errors_after([float("nan")], 0))
