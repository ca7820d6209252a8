"""The candidate space and its constraints."""

from __future__ import annotations

import numpy as np
import pytest

from stratos.plan.planner import build_space
from stratos.plan.problem import CONSTRAINTS, VARS, Knobs, evaluate

C = {c: i for i, c in enumerate(CONSTRAINTS)}


@pytest.fixture
def space(cfg_factory):
    cfg = cfg_factory(task="gsm8k", planner__teachers=["qwen2p5_7b", "qwen2p5_72b", "mahjong_engine"],
                      planner__students=["qwen2p5_0p5b", "qwen2p5_3b", "tiny_llama"])
    return build_space(cfg)


def test_enumeration_is_the_full_product(space):
    X = space.enumerate_all()
    assert space.size == len(space.cloud) * 3 * 3 * 2
    assert set(X) == set(VARS) and all(len(v) == space.size for v in X.values())
    combos = np.stack([X[v] for v in VARS], axis=1)
    assert len(np.unique(combos, axis=0)) == space.size


def test_constraints_follow_their_limits(space):
    X = space.enumerate_all()
    ev = evaluate(space, X)
    e = ev.est
    np.testing.assert_allclose(ev.G[:, C["budget"]], e["cost_usd"] / space.limits.budget_usd - 1)
    np.testing.assert_allclose(ev.G[:, C["deadline"]], e["train_hours"] / space.limits.deadline_h - 1)
    np.testing.assert_allclose(ev.G[:, C["latency"]], e["latency_ms_per_token"] / space.limits.latency_slo_ms - 1)
    np.testing.assert_allclose(ev.G[:, C["accuracy"]], space.limits.min_accuracy - e["accuracy"])
    ok = space.pairs.ok[X["teacher"], X["student"], X["strategy"]]
    assert ((ev.G[:, C["pairing"]] <= 0) == ok).all()
    feas = ev.feasible
    assert feas.any() and not feas.all()
    assert (e["cost_usd"][feas] <= space.limits.budget_usd).all()
    # engines cost no accelerator time for the teacher: engine->student is never slower than 7b->student
    srv, stu, strat = X["server"], X["student"], X["strategy"]
    eng = X["teacher"] == 2
    q7 = X["teacher"] == 0
    assert (e["train_hours"][eng] <= e["train_hours"][q7] + 1e-12).all()
    assert (srv[eng] == srv[q7]).all() and (stu[eng] == stu[q7]).all() and (strat[eng] == strat[q7]).all()


def test_a_72b_logit_teacher_does_not_fit_one_small_gpu(space):
    X = space.enumerate_all()
    ev = evaluate(space, X)
    names = space.cloud.servers.name
    t4 = np.flatnonzero(names == "aws/g4dn.xlarge/us-east-1")[0]
    h200x8 = np.flatnonzero(names == "aws/p5e.48xlarge/us-east-2")[0]
    logit72 = (X["teacher"] == 1) & (X["student"] == 0) & (X["strategy"] == 0)
    assert space.pairs.mode[1, 0, 0] == "logit"
    assert ev.G[logit72 & (X["server"] == t4), C["memory"]][0] > 0
    assert ev.G[logit72 & (X["server"] == h200x8), C["memory"]][0] <= 0


def test_knobs_change_memory_time_and_accuracy_the_right_way(space):
    space.knobs = Knobs(lora_ranks=[0, 16], quant_bits=[16, 4], micro_batch=[8], gpus=[0, 1])
    space.__post_init__()
    X = space.enumerate_all()
    ev = evaluate(space, X)
    e = ev.est
    names = space.cloud.servers.name
    h100x8 = np.flatnonzero(names == "aws/p5.48xlarge/us-east-1")[0]
    base = (X["server"] == h100x8) & (X["teacher"] == 0) & (X["student"] == 1) & (X["strategy"] == 0)

    def one(lora, quant, gpus):
        i = np.flatnonzero(base & (X["lora"] == lora) & (X["quant"] == quant) & (X["gpus"] == gpus))
        return int(i[0])

    full, lora = one(0, 0, 0), one(1, 0, 0)
    assert e["train_mem_gb_per_device"][lora] < e["train_mem_gb_per_device"][full]
    assert e["train_hours"][lora] < e["train_hours"][full] and e["accuracy"][lora] < e["accuracy"][full]
    q4 = one(0, 1, 0)
    assert e["accuracy"][q4] < e["accuracy"][full] and e["serve_mem_gb"][q4] < e["serve_mem_gb"][full]
    g1 = one(0, 0, 1)
    assert e["n_gpus"][g1] == 1 and e["n_gpus"][full] == 8
    assert e["train_hours"][g1] > 6 * e["train_hours"][full]  # 8 GPUs at 0.95 per doubling
    assert e["price_hour"][g1] == pytest.approx(e["price_hour"][full] / 8)
