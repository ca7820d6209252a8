"""plan(): the plan.json contract, selection, baselines, NSGA path, config checks."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf.errors import ValidationError

from stratos.errors import UserError
from stratos.plan.planner import build_space, plan
from stratos.plan.problem import evaluate
from stratos.plan.select import check_weights, deployment_score


@pytest.fixture(scope="module")
def result():
    from tests.plan.conftest import make_cfg

    return plan(make_cfg(task="gsm8k", teacher="qwen2p5_7b", student="qwen2p5_0p5b", strategy="alignment"))


def test_plan_json_contract(result):
    j = result.json
    for key in ("selected", "candidates", "pareto", "excluded", "baselines", "improvement", "front", "constraints",
                "feasible", "run", "search"):
        assert key in j
    s = j["selected"]
    for key in ("server", "teacher", "student", "strategy"):
        assert isinstance(s[key], str)
    for key in ("train_hours", "cost_usd", "latency_ms_per_token", "accuracy", "ttft_ms", "throughput_tok_s"):
        assert isinstance(s["estimates"][key], float)
    assert s["strategy"] in ("alignment", "injection")
    assert set(j["baselines"]) == {"accuracy_first", "cost_first", "latency_first"}
    assert all("score" in b for b in j["baselines"].values())
    assert set(j["improvement"]) == set(j["baselines"])
    assert j["pareto"] == len(j["front"]) and j["candidates"] >= j["feasible"] >= j["pareto"] > 0
    assert j["constraints"]["budget_usd"] == 100.0
    ex = {(e["teacher"], e["student"]) for e in j["excluded"]}
    assert ("tiny_teacher", "qwen2p5_3b") in ex  # bigger student than teacher
    assert all(e["reasons"] for e in j["excluded"])


def test_selection_maximises_the_score_over_the_front(result):
    j = result.json
    scores = [p["score"] for p in j["front"]]
    assert j["selected"]["score"] == max(scores) == scores[0]
    assert all(v is None or v >= 0 for v in j["improvement"].values())  # the front's best beats any baseline
    for name, b in j["baselines"].items():
        imp = j["improvement"][name]
        if imp is not None:
            assert imp == pytest.approx(100 * (j["selected"]["score"] - b["score"]) / b["score"], abs=0.01)
    # recompute: the chosen point's score from the documented formula
    w = check_weights(dict(j["selection"]["weights"]))
    best = deployment_score(result.chosen[None], result.F_front, w)[0]
    assert best == pytest.approx(j["selected"]["score"], abs=1e-6)
    acc = [p["estimates"]["accuracy"] for p in j["front"]]
    assert j["baselines"]["accuracy_first"]["estimates"]["accuracy"] == pytest.approx(max(acc), abs=1e-6)


def test_run_estimate_for_the_configured_pair(result):
    run = result.json["run"]
    assert run["server"] == "local" and run["device"] == "cpu"
    assert run["teacher"] == "qwen2p5_7b" and run["student"] == "qwen2p5_0p5b" and run["strategy"] == "alignment"
    est = run["estimates"]["alignment"]
    assert est["mode"] == "logit" and est["train_hours"] > 1  # a 7B teacher on two CPU cores is slow
    # steps x batch x tokens per example (planner.example_tokens for gsm8k: 128 until a run measures it)
    assert run["tokens"] == 1000 * 32 * 128 and run["source"] == "config"


def test_knee_selection_front_max_and_weights(cfg_factory):
    cfg = cfg_factory(task="gsm8k", planner__selection="knee", planner__front_max=5)
    j = plan(cfg).json
    assert len(j["front"]) == 5 and j["front_truncated"] and j["pareto"] > 5
    assert j["selection"]["method"] == "knee"
    cheap = plan(cfg_factory(task="gsm8k", planner__weights={"cost": 1.0})).json
    assert cheap["selected"]["estimates"]["cost_usd"] == cheap["baselines"]["cost_first"]["estimates"]["cost_usd"]


def test_nsga_path_when_the_knobs_make_the_space_large(cfg_factory):
    cfg = cfg_factory(task="gsm8k", planner__teachers=["qwen2p5_7b", "llama3p1_8b"],
                      planner__students=["qwen2p5_0p5b", "llama3p2_1b"], planner__lora_ranks=[0, 8, 32],
                      planner__quant_bits=[4, 8, 16], planner__micro_batch=[2, 8], planner__enumerate_limit=1000,
                      planner__pop_size=40, planner__generations=10)
    j = plan(cfg).json
    assert j["search"]["method"] == "nsga2" and j["candidates"] > 1000 and j["evaluated"] < j["candidates"]
    assert j["selected"]["lora_rank"] in (0, 8, 32) and j["selected"]["quant_bits"] in (4, 8, 16)


def test_bad_planner_values(cfg_factory):
    for kw, key in ((dict(planner__strategies=["magic"]), "planner.strategies"),
                    (dict(planner__quant_bits=[3]), "planner.quant_bits"),
                    (dict(planner__micro_batch=[0]), "planner.micro_batch"),
                    (dict(planner__train_tokens=0), "planner.train_tokens"),
                    (dict(planner__lora_ranks=[-2]), "planner.lora_ranks")):
        with pytest.raises(UserError, match=key.replace(".", r"\.")):
            plan(cfg_factory(**kw))
    for kw, key in ((dict(planner__selection="best"), "planner.selection"),  # Enums: refused on assignment
                    (dict(planner__search="grid"), "planner.search")):
        with pytest.raises(ValidationError, match=key.replace(".", r"\.")):
            cfg_factory(**kw)


def test_spot_and_allowlist_reach_the_plan(cfg_factory):
    cfg = cfg_factory(task="gsm8k", servers__pricing="spot", servers__region_allowlist=["eu-*", "europe-*", "west*"])
    j = plan(cfg).json
    regions = {p["region"] for p in j["front"]}
    assert regions <= {"local"} | {r for r in regions if r.startswith(("eu-", "europe-", "west"))}
    assert j["constraints"]["pricing"] == "spot" and j["constraints"]["servers_dropped"]["region_allowlist"] > 0
    sp = build_space(cfg)
    ev = evaluate(sp, sp.enumerate_all())
    assert np.isfinite(ev.F[ev.feasible]).all()
