import itertools

import numpy as np
import pytest

from stratos.acme.config import DeviceClassConfig
from stratos.acme.pareto import (design_points, fit_surrogate, front, poly_features, predict_surrogate,
                                 select_for_device, surrogate_fit_report, tradeoff_score)
from stratos.acme.profile import SubnetCost
from stratos.errors import UserError

GRID = np.array(list(itertools.product([1.0, 0.75, 0.5, 0.25], [1.0, 0.75, 0.5, 0.25])))


def test_degree2_surrogate_is_exact_on_a_quadratic_and_reports_held_out_error():
    true = lambda X: 0.3 + 0.2 * X[:, 0] + 0.1 * X[:, 1] - 0.05 * X[:, 0] ** 2 + 0.07 * X[:, 0] * X[:, 1]  # noqa: E731
    assert poly_features(GRID, 2).shape == (16, 6)
    fit = design_points(GRID, 8)  # (GRID[:8] would hold only two widths: w^2 unidentifiable)
    coef = fit_surrogate(GRID[fit], true(GRID[fit]), 2)
    np.testing.assert_allclose(predict_surrogate(coef, GRID, 2), true(GRID), atol=1e-10)
    noisy = true(GRID) + np.random.default_rng(0).normal(0, 0.01, 16)
    rep = surrogate_fit_report(GRID, noisy, 8, 2)
    assert len(rep["fit_idx"]) == 8 and sorted(rep["fit_idx"] + rep["held_idx"]) == list(range(16))
    assert 0 < rep["held_mae"] < 0.05


def test_design_points_start_at_the_full_model_and_spread_out():
    idx = design_points(GRID, 5)
    assert len(set(idx.tolist())) == 5 and tuple(GRID[idx[0]]) == (1.0, 1.0)
    assert tuple(GRID[idx[1]]) == (0.25, 0.25)  # the farthest corner next


def _brute_front(F):
    return sorted(i for i in range(len(F)) if not any((F[j] <= F[i]).all() and (F[j] < F[i]).any()
                                                     for j in range(len(F))))


def test_front_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(20):
        F = rng.integers(0, 5, size=(30, 3)).astype(float)
        assert sorted(front(F).tolist()) == _brute_front(F)


def _costs():
    return [SubnetCost(w, d, params=int(2e5 * w * d) + 1000, size_mb=(2e5 * w * d + 1000) * 4 / 1e6,
                       mflops=6.0 * w * d, host_ms=0.2 + 0.6 * w * d) for w, d in GRID]


def test_selection_respects_limits_and_scores_baselines():
    costs = _costs()
    acc = 0.4 + 0.2 * GRID[:, 0] * GRID[:, 1] ** 0.5
    dev = DeviceClassConfig(name="d", max_size_mb=0.35, slowdown=2.0, mj_per_mflop=0.1, mj_per_mb=1.0)
    sel = select_for_device(costs, acc, acc, dev, "accuracy")
    feasible = [i for i, c in enumerate(costs) if c.size_mb <= 0.35]
    assert sel["chosen"]["feasible"] and sel["chosen"]["acc"] == pytest.approx(max(acc[feasible]))
    assert all(p["size_mb"] <= 0.35 for p in sel["front"])
    b = sel["baselines"]
    assert b["highest_accuracy"]["index"] == 0 and not b["highest_accuracy"]["feasible"]
    assert b["largest_size"]["size_mb"] == pytest.approx(max(costs[i].size_mb for i in feasible))
    size = np.array([c.size_mb for c in costs])
    energy = 0.1 * np.array([c.mflops for c in costs]) + size
    want = tradeoff_score(acc, size, energy, size.max(), energy.max(), 0.5)
    assert b["random"]["score"] == pytest.approx(want[feasible].mean())
    assert sel["chosen"]["score"] == pytest.approx(want[sel["chosen"]["index"]])
    trade = select_for_device(costs, acc, acc, dev, "tradeoff")
    assert trade["chosen"]["score"] == pytest.approx(max(p["score"] for p in trade["front"]))
    assert trade["chosen"]["score"] >= sel["chosen"]["score"]


def test_latency_and_energy_limits_apply_and_infeasible_is_a_user_error():
    costs = _costs()
    acc = np.linspace(0.6, 0.3, 16)
    dev = DeviceClassConfig(name="slow", max_size_mb=10.0, max_latency_ms=0.8, slowdown=2.0)
    sel = select_for_device(costs, acc, acc, dev, "accuracy")
    assert all(p["latency_ms"] <= 0.8 for p in sel["front"]) and sel["chosen"]["latency_ms"] <= 0.8
    with pytest.raises(UserError, match="no sub-network fits"):
        select_for_device(costs, acc, acc, DeviceClassConfig(name="tiny", max_size_mb=0.001), "accuracy")
