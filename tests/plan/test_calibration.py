"""Ledger and recalibration through an fsspec history file."""

from __future__ import annotations

import math
import uuid

import pytest

from stratos import artifacts
from stratos.plan.calibration import Calibration, ledger, load_history, record_actuals
from stratos.plan.planner import plan


def history_url():
    return f"memory://history-{uuid.uuid4().hex}/planner_history.json"


@pytest.fixture
def local_plan(cfg_factory):
    def make(history):
        cfg = cfg_factory(servers="local", strategy="alignment", planner__history=history,
                          planner__teachers=["mahjong_engine"], planner__students=["tiny_llama"])
        return cfg, plan(cfg).json
    return make


def test_ledger_rows_rescale_time_to_trained_tokens(local_plan):
    _, j = local_plan(None)
    run = j["run"]
    est = run["estimates"]["alignment"]
    rows = ledger(j, {"train_seconds": 600.0, "tokens": run["tokens"] / 2, "accuracy": 0.9,
                      "latency_ms_per_token": 2.0})
    by = {r["quantity"]: r for r in rows}
    assert by["train_hours"]["estimated"] == pytest.approx(est["train_hours"] / 2)
    assert by["train_hours"]["actual"] == pytest.approx(600 / 3600)
    assert by["accuracy"]["estimated"] == est["accuracy"] and by["accuracy"]["ratio"] == pytest.approx(
        0.9 / est["accuracy"])
    assert "cost_usd" not in by  # not measured, not in the ledger
    with pytest.raises(ValueError, match="unknown measured keys"):
        ledger(j, {"acc": 0.9})
    with pytest.raises(ValueError, match="no estimate for strategy"):
        ledger(j, {"accuracy": 0.9, "strategy": "injection"})


def test_recalibration_moves_mfu_latency_and_accuracy_toward_measured(local_plan):
    url = history_url()
    cfg, j0 = local_plan(url)
    est0 = j0["run"]["estimates"]["alignment"]
    assert j0["calibration"]["runs_mfu"] == {}
    # the run went 3x faster than estimated, answered more accurately and decoded slower
    measured = {"train_hours": est0["train_hours"] / 3, "accuracy": min(1.0, est0["accuracy"] + 0.3),
                "latency_ms_per_token": est0["latency_ms_per_token_raw"] * 2, "cost_usd": 0.0}
    rec = record_actuals(url, j0, measured)
    assert rec["derived"]["mfu_ref"] == pytest.approx(3 * est0["mfu_ref"])
    assert rec["derived"]["latency_factor"] == pytest.approx(2.0)
    assert len(load_history(url)["runs"]) == 1 and rec["ledger"]
    cal = Calibration.load(url)
    prior = est0["mfu_ref"]
    # one run against a prior counted once: the geometric mean of prior and measurement
    assert cal.mfu("cpu", prior) == pytest.approx(math.sqrt(prior * 3 * prior))
    assert cal.latency_factor("cpu") == pytest.approx(math.sqrt(2.0))
    assert cal.accuracy_bias("mahjong", "alignment") == pytest.approx((measured["accuracy"] - est0["accuracy_raw"]) / 2)
    # the next plan reads the history: faster, more accurate, slower to decode
    _, j1 = local_plan(url)
    est1 = j1["run"]["estimates"]["alignment"]
    assert est0["train_hours"] / 3 < est1["train_hours"] < est0["train_hours"]
    assert est1["mfu_ref"] == pytest.approx(math.sqrt(3) * prior)
    assert est0["accuracy"] < est1["accuracy"] < measured["accuracy"]
    assert est1["latency_ms_per_token"] > est0["latency_ms_per_token"]
    assert est1["accuracy_raw"] == pytest.approx(est0["accuracy_raw"])  # residuals stay against the raw prior
    assert j1["calibration"]["runs_mfu"] == {"cpu": 1}
    # a second identical run pulls further toward the measurement (prior weight 1 of 3)
    record_actuals(url, j1, measured)
    # (rel 1e-5: plan.json rounds estimates to 6 decimals)
    assert Calibration.load(url).mfu("cpu", prior) == pytest.approx((prior * (3 * prior) ** 2) ** (1 / 3), rel=1e-5)


def test_latency_is_compared_at_the_answer_length_the_run_measured(local_plan):
    # per-token latency spreads the time to first token over the answer: a student that stops after 2 tokens
    # pays half its prompt time per token, which the plan's figure at the task's typical length does not
    url = history_url()
    _, j = local_plan(url)
    est = j["run"]["estimates"]["alignment"]
    at_2 = est["decode_ms_per_token_raw"] + est["ttft_ms_raw"] / 2
    assert at_2 > est["latency_ms_per_token_raw"]
    rec = record_actuals(url, j, {"latency_ms_per_token": at_2 * 1.5, "tokens_per_answer": 2.0})
    assert rec["derived"]["latency_factor"] == pytest.approx(1.5, rel=1e-4)
    row = next(r for r in rec["ledger"] if r["quantity"] == "latency_ms_per_token")
    assert row["estimated"] == pytest.approx(est["decode_ms_per_token"] + est["ttft_ms"] / 2)
    # without the length, the plan's own figure is the estimate (histories written before it was measured)
    old = record_actuals(url, j, {"latency_ms_per_token": est["latency_ms_per_token_raw"] * 1.5})
    assert old["derived"]["latency_factor"] == pytest.approx(1.5, rel=1e-4)


def test_record_actuals_accepts_a_plan_url_and_checks_the_server(local_plan):
    url = history_url()
    _, j = local_plan(None)
    artifacts.write_json("memory://plans/p1/plan.json", j)
    record_actuals(url, "memory://plans/p1/plan.json", {"accuracy": 0.5})
    assert load_history(url)["runs"][0]["task"] == "mahjong"
    with pytest.raises(ValueError, match="not 'aws"):
        record_actuals(url, j, {"accuracy": 0.5, "server": "aws/p5.48xlarge/us-east-1"})
    artifacts.write_json("memory://plans/bad.json", {"nope": 1})
    with pytest.raises(ValueError, match="not a Stratos planner history"):
        load_history("memory://plans/bad.json")
