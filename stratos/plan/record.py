"""After a run: record what it measured into the planner's calibration history.

The pipeline runs this as its own last step, after the report (stratos/pipeline.py), so the report
stays a pure function of the manifests and re-running it never touches shared state. The record
is appended once per (distill, evaluate) result: `<run_dir>/ledger.json` holds the rows written
and marks the run as recorded, so a re-run that reuses both stages does not count it twice.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from stratos import artifacts
from stratos.artifacts import Manifest
from stratos.plan.calibration import ledger, record_actuals
from stratos.plan.outputs import PLAN_JSON

log = logging.getLogger("stratos")
LEDGER_JSON = "ledger.json"  # in the run directory: the rows recorded for this run


def measured_for_ledger(inputs: dict[str, Manifest], run: dict | None = None) -> dict:
    """What this run measured, in the planner's units (see stratos.plan.calibration.MEASURED_KEYS).

    `run` is plan.json's run estimate: its server is where the run trained, and the cost is that
    server's stated price for the time measured (plus its start-up, which the price also pays for)."""
    dm, ev = inputs["distill"].metrics, inputs["evaluate"].metrics
    out = {"strategy": dm.get("strategy/name"), "accuracy": ev.get("evaluate/test/accuracy"),
           "train_seconds": dm.get("distill/seconds"), "steps": dm.get("distill/steps"),
           "batch_size": dm.get("distill/batch_size")}
    est = ((run or {}).get("estimates") or {}).get(dm.get("strategy/name")) or {}
    if run:
        out["server"] = run["server"]
    if est.get("price_hour") is not None and dm.get("distill/seconds") is not None:
        hours = float(dm["distill/seconds"]) / 3600.0 + float(est.get("startup_hours") or 0.0)
        out["cost_usd"] = float(est["price_hour"]) * hours
    if dm.get("distill/tokens_per_s") and dm.get("distill/seconds"):
        out["tokens"] = dm["distill/tokens_per_s"] * dm["distill/seconds"]
    if ev.get("evaluate/ms_per_token_p50"):
        out["latency_ms_per_token"] = ev["evaluate/ms_per_token_p50"]
    elif ev.get("evaluate/tokens_per_s"):  # an evaluation written before the median was kept
        out["latency_ms_per_token"] = 1000.0 / ev["evaluate/tokens_per_s"]
    out["tokens_per_answer"] = ev.get("evaluate/tokens_per_answer")
    return {k: v for k, v in out.items() if v is not None}


def read_plan(done: dict[str, Manifest]) -> dict:
    """plan/plan.json of the finished stages `done` ({} when the plan stage did not run)."""
    plan = done.get("plan")
    if plan is None or PLAN_JSON not in plan.outputs or not artifacts.exists(plan.outputs[PLAN_JSON]):
        return {}
    return artifacts.read_json(plan.outputs[PLAN_JSON])


def preview(done: dict[str, Manifest]) -> list[dict] | None:
    """Estimated-vs-measured rows for the report, without recording anything."""
    plan = read_plan(done)
    if not plan.get("run") or not all(k in done for k in ("distill", "evaluate")):
        return None
    return ledger(plan, measured_for_ledger(done, plan["run"]))


def record_run(cfg: DictConfig, run_dir: str, done: dict[str, Manifest]) -> list[dict] | None:
    """Append this run to `planner.history` once; returns the rows recorded (None: nothing to record)."""
    history = OmegaConf.select(cfg, "planner.history", default=None)
    if not history or not all(k in done for k in ("plan", "distill", "evaluate")):
        return None
    plan = read_plan(done)
    if not plan.get("run"):
        return None
    key = f"{done['distill'].config_hash}-{done['evaluate'].config_hash}"
    marker = artifacts.join(run_dir, LEDGER_JSON)
    if artifacts.exists(marker) and artifacts.read_json(marker).get("key") == key:
        return artifacts.read_json(marker)["rows"]  # already in the history: the stages were reused
    rows = record_actuals(history, plan, measured_for_ledger(done, plan["run"]))["ledger"]
    artifacts.write_json(marker, {"key": key, "history": history, "rows": rows})
    log.info("calibration: this run's measurements recorded in %s", history)
    return rows
