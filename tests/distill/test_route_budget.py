"""stratos/distill/route_budget.py: the exact knapsack against brute force, the budget trade on a hand-made table,
the infeasible budget, the cost model worked by hand, and route=auto within a budget."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from omegaconf import OmegaConf

from stratos.config import RouteConfig
from stratos.distill.route_budget import (ServerRate, TeacherPrices, budget_route, choose, server_rate,
                                          teacher_prices, text_tokens)
from stratos.distill.routing import route
from stratos.errors import UserError
from stratos.models.teachers import RoutedTeacher
from tests.distill.test_routing import Oracle, SliceTask, rows

SERVER = ServerRate("box", 1e14, 3.6, "test")  # 1e14 FLOP/s sustained, $3.6 per hour = $0.001 per second


def brute(value, weight, budget):
    """Every routing in lexicographic order; the first with the most value, then the least weight."""
    best = None
    for a in itertools.product(range(value.shape[1]), repeat=value.shape[0]):
        v = w = 0.0
        for s, t in enumerate(a):  # summed slice by slice, as `choose` does
            v, w = v + value[s, t], w + weight[s, t]
        if w <= budget * (1 + 1e-9) and (best is None or (v, -w) > (best[0], -best[1])):
            best = (v, w, a)
    return best


@pytest.mark.parametrize("integer", [False, True])  # integer values and weights: many ties, broken the same way
def test_the_knapsack_is_exact_by_enumeration_and_by_pareto_dp(integer):
    rng = np.random.default_rng(0)
    for _ in range(60):
        S, T = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        value = rng.integers(0, 4, (S, T)).astype(float) if integer else rng.random((S, T)) * 10
        weight = rng.integers(0, 4, (S, T)).astype(float) if integer else rng.random((S, T)) * 5
        lo, hi = weight.min(1).sum(), weight.max(1).sum()
        budget = float(lo + rng.random() * (hi - lo)) if hi > lo else float(lo)
        want = brute(value, weight, budget)
        for enumerate_max in (1 << 16, 0):  # exact enumeration, then the DP over slices
            got = choose(value, weight, budget, enumerate_max=enumerate_max)
            assert tuple(got) == want[2], (S, T, enumerate_max)
            assert weight[np.arange(S), got].sum() <= budget * (1 + 1e-9)
        assert choose(value, weight, lo * 0.99 - 1e-6) is None or lo == 0


def test_the_dp_keeps_only_undominated_partial_routings_and_scales_to_twelve_slices():
    rng = np.random.default_rng(1)
    value, weight = rng.random((12, 3)), rng.random((12, 3))  # 3^12 = 531,441 routings: the DP path
    budget = float(weight.mean(1).sum())
    got = choose(value, weight, budget)
    assert weight[np.arange(12), got].sum() <= budget
    # exact: no single-slice swap that fits improves it (a necessary condition, brute force being too slow here)
    best = value[np.arange(12), got].sum()
    for s, t in itertools.product(range(12), range(3)):
        a = got.copy()
        a[s] = t
        if weight[np.arange(12), a].sum() <= budget:
            assert value[np.arange(12), a].sum() <= best + 1e-12


def table(acc: dict[str, dict[str, float]], n: int = 4) -> dict:
    return {s: {t: {"accuracy": a, "n": n} for t, a in row.items()} for s, row in acc.items()}


def prices(usd_per_mtok: list[float], ids=("big", "small")) -> TeacherPrices:
    return TeacherPrices(list(ids), np.zeros(len(ids)), np.array(usd_per_mtok, dtype=float), SERVER)


def test_a_budget_puts_the_cheaper_teacher_on_the_slice_where_it_loses_least():
    """big: 0.9 on both slices at $1 a row; small: 0.85 on A, 0.3 on B at $0.1 a row; 10 rows each. No budget: big
    twice ($20). $11 buys big on one slice only: on B small would lose 6 correct answers, on A only 0.5."""
    t = table({"A": {"big": 0.9, "small": 0.85}, "B": {"big": 0.9, "small": 0.3}})
    tokens = np.full((2, 2), 1e6)  # a million tokens a row: usd_per_mtok is then USD a row
    best = {"A": "big", "B": "big"}
    pick, _, cost = budget_route(t, tokens, {"A": 10, "B": 10}, prices([1.0, 0.1]), 11.0, 0.0, best, "big", 0)
    assert pick == {"A": "small", "B": "big"}
    assert cost["usd"] == pytest.approx(11.0) and cost["unconstrained_usd"] == pytest.approx(20.0)
    assert cost["expected_correct"] == pytest.approx(17.5) and cost["unconstrained_expected_correct"] == 18.0
    assert cost["per_slice"]["A"] == {"teacher": "small", "rows": 10, "usd": 1.0,
                                      "usd_per_row": {"big": 1.0, "small": 0.1},
                                      "tokens_per_row": {"big": 1e6, "small": 1e6}}
    assert cost["cheapest_usd"] == pytest.approx(2.0)
    same, _, _ = budget_route(t, tokens, {"A": 10, "B": 10}, prices([1.0, 0.1]), 20.0, 0.0, best, "big", 0)
    assert same == best  # enough for the unconstrained best: the budget changes nothing
    free, _, _ = budget_route(t, tokens, {"A": 10, "B": 10}, prices([1.0, 0.1]), None, 0.0, best, "big", 0)
    assert free == best


def test_a_tolerance_within_a_budget_takes_the_cheaper_of_near_equal_teachers():
    t = table({"A": {"big": 0.9, "small": 0.88}, "B": {"big": 0.9, "small": 0.5}})
    tokens = np.full((2, 2), 1e6)
    best = {"A": "big", "B": "big"}
    pick, _, _ = budget_route(t, tokens, {"A": 10, "B": 10}, prices([1.0, 0.1]), 1e9, 0.05, best, "big", 0)
    assert pick == {"A": "small", "B": "big"}  # 0.88 is within 0.05 of 0.9: as good, and ten times cheaper
    pick, _, _ = budget_route(t, tokens, {"A": 10, "B": 10}, prices([1.0, 0.1]), 1e9, 0.0, best, "big", 0)
    assert pick == best


def test_a_budget_below_the_cheapest_routing_is_refused_in_one_line():
    t = table({"A": {"big": 0.9, "small": 0.85}, "B": {"big": 0.9, "small": 0.3}})
    with pytest.raises(UserError, match=r"invalid value for 'route.budget_usd': 1.5 \(allowed: route.budget_usd "
                                        r">= 2.5, what the cheapest routing of these 25 training rows costs") as e:
        # 20 probed-slice rows at >= $0.1 + 5 unprobed rows at the cheaper teacher's $0.1 mean = $2.5
        budget_route(t, np.full((2, 2), 1e6), {"A": 10, "B": 10}, prices([0.1, 1.0]), 1.5, 0.0,
                     {"A": "big", "B": "big"}, "big", 5)
    assert "\n" not in str(e.value)


def test_the_cost_per_row_of_an_hf_an_openai_and_an_engine_teacher_by_hand():
    """100 tokens a row. hf, 7B parameters: 2 * 7e9 * 100 = 1.4e12 FLOPs, 0.014 s at 1e14 FLOP/s, at $3.6/h
    $1.4e-5. openai at $2 per million tokens: $2e-4. The engine: free. route.usd_per_mtok=5 on hf: $5e-4."""
    cfg = OmegaConf.create({
        "teachers": {"hf": {"kind": "hf", "card": {"params_b": 7.0}}, "api": {"kind": "openai", "card": {}},
                     "eng": {"kind": "engine", "card": {}}},
        "route": {"usd_per_mtok": {}}, "servers": {"api_usd_per_mtok": 2.0}})

    class Members:
        ids, members = ["hf", "api", "eng"], {}

    p = teacher_prices(cfg, Members(), SERVER)
    got = p.per_row(np.full((1, 3), 100.0))  # (S=1, T=3)
    assert got[0] == pytest.approx([1.4e-5, 2e-4, 0.0], rel=1e-12)
    assert [v["priced_by"] for v in p.as_dict().values()] == ["compute", "tokens", "free"]
    cfg.route.usd_per_mtok = {"hf": 5.0}
    assert teacher_prices(cfg, Members(), SERVER).per_row(np.full((1, 3), 100.0))[0, 0] == pytest.approx(5e-4)


def test_the_server_comes_from_the_plans_run_estimate_else_this_machine():
    cfg = OmegaConf.create({"servers": {"local_price_hour": 0.1}, "trainer": {"batch_size": 8}})
    plan = {"run": {"server": "aws/g5", "estimates": {"alignment": {"flops": 3.6e18, "train_hours": 1.5,
                                                                    "startup_hours": 0.5, "price_hour": 4.0}}}}
    s = server_rate(cfg, plan)  # 3.6e18 FLOPs in the 1 h of training (the startup half hour trains nothing)
    assert (s.name, s.flops_per_s, s.price_hour, s.source) == ("aws/g5", pytest.approx(1e15), 4.0,
                                                               "plan/plan.json run estimate")
    here = server_rate(cfg, {})
    assert here.name == "local" and here.price_hour == 0.1 and here.flops_per_s > 0 and "this machine" in here.source


def test_a_teacher_without_a_tokenizer_counts_four_characters_a_token():
    assert text_tokens(object(), "abcdefghi") == 3


def test_route_auto_within_a_budget_records_the_cost_and_the_trade():
    """a is right on slices 0-1, b on slice 0 only; a costs $1 per million tokens, b is free. Each row: question
    'qN-i' (1 token) + answer 'right'/'wrong' (2 tokens) = 3 tokens, so a row costs $3 at a. 6 training rows on
    each probed slice, 3 on slice 7 (unprobed: a is right on all probed rows, b on half)."""
    t = RoutedTeacher({"a": Oracle("a", {0, 1}), "b": Oracle("b", {0})})
    p = TeacherPrices(["a", "b"], np.zeros(2), np.array([1e6, 0.0]), SERVER)  # a: $3 a row
    train, probe = rows([0, 1, 7], k=6)[:15], rows([0, 1], k=2)

    def routed(**kw):
        return route(OmegaConf.structured(RouteConfig(by="auto", probe_n=2, **kw)), SliceTask(), t, train, probe,
                     prices=p)

    free = routed()
    assert free.assignment == {"0": "a", "1": "a"} and free.cost["budget_usd"] is None
    assert free.cost["usd"] == pytest.approx(3.0 * 15)  # 12 probed rows + 3 unprobed ones at a (the best overall)
    r = routed(budget_usd=30.0)
    assert r.assignment == {"0": "b", "1": "a"}  # b is as good on slice 0, and free
    assert r.cost["usd"] == pytest.approx(27.0) and r.cost["unconstrained_usd"] == pytest.approx(45.0)
    assert r.cost["unprobed"] == {"rows": 3, "teacher": "a", "usd": 9.0} and r.rows == {"b": 6, "a": 9}
    assert "within route.budget_usd=$30: $27 of teacher work for 15 (unconstrained $45 for 15)" in r.reason
    r = routed(budget_usd=20.0)  # a on slice 1 (6 more right answers for $18) beats a on slice 7 (1.5 for $9)
    assert r.assignment == {"0": "b", "1": "a"} and r.cost["unprobed"]["teacher"] == "b" and t.route_of({"n": 7}) == "b"
    assert r.cost["expected_correct"] == 13.5 and r.cost["usd"] == pytest.approx(18.0)
    with pytest.raises(UserError, match="route.budget_usd >= 9, what the cheapest routing of these 15 training rows"):
        routed(budget_usd=8.0, default="a")  # route.default fixes the 3 unprobed rows at a: $9 whatever the rest
