"""Pareto fronts: pymoo path == all-pairs brute force == Deb's archive, on random instances."""

from __future__ import annotations

import numpy as np
import pytest

from stratos.plan.front import archive_front, brute_force_front, pareto_front, pareto_ranks, verify_front


def naive(F):
    """Textbook definition, two Python loops."""
    out = []
    for i, a in enumerate(F):
        if not any(all(b <= a) and any(b < a) for j, b in enumerate(F) if j != i):
            out.append(i)
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("m", [2, 3, 4])
def test_front_equals_brute_force_on_random_instances(seed, m):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 1500))
    if seed % 2:  # few distinct values: many ties and exact duplicates
        F = rng.integers(0, 6, size=(n, m)).astype(float)
    else:  # correlated objectives (like cost and time), continuous
        base = rng.random((n, 1))
        F = base + 0.3 * rng.random((n, m))
    fast = pareto_front(F)
    assert np.array_equal(fast, brute_force_front(F))
    assert np.array_equal(fast, archive_front(F))
    assert verify_front(F, fast)
    if n <= 300:
        assert np.array_equal(fast, naive(F))


def test_duplicates_are_all_kept_and_dominated_points_dropped():
    F = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [3.0, 3.0], [0.5, 5.0]])
    assert pareto_front(F).tolist() == [0, 1, 2, 5]
    assert brute_force_front(F).tolist() == [0, 1, 2, 5]
    assert archive_front(F).tolist() == [0, 1, 2, 5]
    ranks = pareto_ranks(F)
    assert ranks[[0, 1, 2, 5]].tolist() == [0, 0, 0, 0] and ranks[3] == 1 and ranks[4] == 2


def test_verify_front_rejects_wrong_sets():
    rng = np.random.default_rng(3)
    F = rng.random((400, 3))
    front = pareto_front(F)
    assert verify_front(F, front)
    assert not verify_front(F, front[:-1])  # a missing member
    extra = np.setdiff1d(np.arange(len(F)), front)[0]
    assert not verify_front(F, np.sort(np.append(front, extra)))  # a dominated intruder


def test_empty_input():
    assert pareto_front(np.zeros((0, 4))).size == 0
    assert brute_force_front(np.zeros((0, 4))).size == 0
