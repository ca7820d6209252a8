"""NSGA-II / NSGA-III over the integer variables, against the exact front."""

from __future__ import annotations

import numpy as np
import pytest

from stratos.plan.front import pareto_front
from stratos.plan.planner import build_space
from stratos.plan.problem import VARS, Knobs, evaluate
from stratos.plan.search import PlanProblem, nsga


@pytest.fixture
def space(cfg_factory):
    cfg = cfg_factory(task="gsm8k", servers="catalog", planner__teachers=["qwen2p5_7b", "llama3p1_8b"],
                      planner__students=["qwen2p5_0p5b", "llama3p2_1b"])
    sp = build_space(cfg)
    sp.knobs = Knobs(lora_ranks=[0, 8], quant_bits=[8, 16], micro_batch=[4, 8], gpus=[0, 1])
    sp.__post_init__()
    return sp


@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3"])
def test_nsga_finds_feasible_points_close_to_the_exact_front(space, algorithm):
    X = nsga(space, algorithm, pop_size=60, generations=25, seed=0)
    n = len(X["server"])
    assert n > 50
    ev = evaluate(space, X)
    assert ev.feasible.all()  # only feasible candidates are archived
    # exact front by enumeration (small enough here)
    Xall = space.enumerate_all()
    evall = evaluate(space, Xall)
    feas = np.flatnonzero(evall.feasible)
    exact = evall.F[feas[pareto_front(evall.F[feas])]]
    found = ev.F[pareto_front(ev.F)]
    # every found point is either on the exact front or dominated by it (never better than exact)
    better = [(exact <= f).all(axis=1).any() for f in found]
    assert all(better)
    # and the search recovers a good share of the extremes: best accuracy and cheapest cost
    assert found[:, 0].min() <= exact[:, 0].min() + 0.02
    assert found[:, 3].min() <= exact[:, 3].min() * 3


def test_problem_is_vectorised_and_declares_bounds(space):
    p = PlanProblem(space)
    assert p.n_var == len(VARS) and p.n_obj == 4 and p.n_ieq_constr == 8
    assert (p.xu == np.array(space.shape) - 1).all()
    X = np.array([[0] * len(VARS), list(np.array(space.shape) - 1)])
    out = p.evaluate(X, return_as_dictionary=True)
    assert out["F"].shape == (2, 4) and out["G"].shape == (2, 8)
