"""Deployment score, knee point, baselines."""

from __future__ import annotations

import numpy as np
import pytest

from stratos.errors import UserError
from stratos.plan.front import pareto_front
from stratos.plan.select import (baselines, check_weights, deployment_score, improvement_pct, knee, lexmin,
                                 utilities)


def random_front(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    acc = rng.uniform(0.2, 0.9, n)
    lat = 10 ** rng.uniform(-1, 2, n)
    hours = 10 ** rng.uniform(-2, 1.5, n)
    cost = hours * 10 ** rng.uniform(-0.5, 2, n)
    F = np.stack([-acc, lat, hours, cost], axis=1)
    return F, pareto_front(F)


def test_utilities_follow_the_documented_formula():
    F = np.array([[-0.9, 10.0, 1.0, 100.0], [-0.5, 1.0, 10.0, 1.0], [-0.7, 100.0, 0.1, 0.0]])
    u = utilities(F, F, log_scale=True)
    assert u[0, 0] == 1 and u[1, 0] == 0 and u[2, 0] == pytest.approx(0.5)
    # latency in log10: 1 ms best, 100 ms worst, 10 ms halfway
    assert u[:, 1].tolist() == pytest.approx([0.5, 1.0, 0.0], abs=1e-3)  # eps = 0.001 ms
    lc = np.log10(np.array([100.0, 1.0, 0.0]) + 0.01)
    assert u[:, 3].tolist() == pytest.approx(((lc.max() - lc) / (lc.max() - lc.min())).tolist())
    lin = utilities(F, F, log_scale=False)
    assert lin[:, 1].tolist() == pytest.approx([90 / 99, 1.0, 0.0])
    same = utilities(F[:1], F[:1])
    assert (same == 1).all()  # an objective constant over the reference set carries no preference


def test_score_is_weighted_mean_of_utilities():
    F, front = random_front()
    w = check_weights({"accuracy": 0.4, "latency": 0.2, "train_time": 0.1, "cost": 0.3})
    s = deployment_score(F[front], F[front], w)
    assert ((0 <= s) & (s <= 1)).all()
    u = utilities(F[front], F[front])
    assert s == pytest.approx(u @ np.array([0.4, 0.2, 0.1, 0.3]))
    only_acc = deployment_score(F[front], F[front], check_weights({"accuracy": 1.0}))
    assert np.argmax(only_acc) == np.argmin(F[front, 0])


def test_weight_validation():
    with pytest.raises(UserError, match="planner.weights"):
        check_weights({"accuracy": 1.0, "speed": 1.0})
    with pytest.raises(UserError, match="not all 0"):
        check_weights({"accuracy": 0.0})
    with pytest.raises(UserError, match="weights >= 0"):
        check_weights({"accuracy": -1.0, "cost": 2.0})


def test_baselines_are_lexicographic_optima_on_the_front():
    F, front = random_front(1)
    F = np.vstack([F, F[:5]])  # exact ties
    feas = np.arange(len(F))
    b = baselines(F, feas)
    front = pareto_front(F)
    for i in b.values():
        assert i in set(front.tolist())
    assert F[b["accuracy_first"], 0] == F[:, 0].min()
    assert F[b["cost_first"], 3] == F[:, 3].min()
    assert F[b["latency_first"], 1] == F[:, 1].min()
    keys = [np.array([1, 0, 0, 0]), np.array([5, 3, 2, 2]), np.array([0, 0, 1, 0])]
    assert lexmin(keys) == 3
    # float rounding is a tie: 0.0005 h*$ reached two ways must fall through to the next key
    cost = np.array([0.1 * 0.005, 0.005 * 0.1 * (1 + 1e-15), 0.0006])
    assert cost[0] != cost[1]
    assert lexmin([cost, np.array([3.0, 1.0, 0.0])]) == 1
    assert lexmin([np.array([1.0, 1.001]), np.array([1.0, 0.0])]) == 0  # a real difference is not a tie
    # ties left after all four objectives go to the preferred row (the composed config), like the chosen plan
    G = np.array([[-0.5, 1.0, 0.1, 0.01], [-0.5, 1.0, 0.1, 0.01]])
    assert set(baselines(G, np.arange(2)).values()) == {0}
    assert set(baselines(G, np.arange(2), prefer=np.array([0.0, 2.0])).values()) == {1}


def test_knee_is_a_front_point_and_improvement_pct():
    F, front = random_front(2, n=600)
    k = knee(F[front])
    assert 0 <= k < len(front)
    assert knee(F[front][:2]) in (0, 1)
    assert improvement_pct(0.6, 0.5) == pytest.approx(20.0)
    assert improvement_pct(0.6, 0.0) is None
