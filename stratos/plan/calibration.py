r"""The ledger and recalibration: estimates next to what runs actually measured.

A history file (JSON at any fsspec URL, `planner.history`) holds one record per finished run:
what the planner estimated for the machine the run used, what the run measured, and the
quantities derived from the pair. `record_actuals` (called by the report stage) appends a record;
`Calibration.load` folds all records into the values the estimators read:

* MFU per device (accelerator model, or "cpu"), as a shrunk geometric mean with the prior counted
  as one observation: $\mu = \exp\big((\ln \mu_0 + \sum_i \ln \mu_i) / (1 + n)\big)$, where a run's
  $\mu_i = \mu_{\mathrm{est}} \cdot T_{\mathrm{est}} / T_{\mathrm{measured}}$ (time is inversely
  proportional to MFU, all else fixed);
* a latency factor per device, $\phi = \exp\big(\sum_i \ln(\ell_i / \hat\ell_i) / (1 + n)\big)$,
  multiplying the compute part of serving latency;
* an accuracy offset per (task, strategy), $\beta = \sum_i (a_i - \hat a_i) / (1 + n)$.

Residuals are taken against the *uncalibrated* predictions stored in the plan (`*_raw`), so
recalibrating twice never double-counts a run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from stratos import artifacts

HISTORY_VERSION = 1
MEASURED_KEYS = ("train_hours", "train_seconds", "tokens", "cost_usd", "accuracy", "latency_ms_per_token",
                 "tokens_per_answer", "strategy", "server", "steps", "batch_size")
PRIOR_WEIGHT = 1.0  # the prior counts as this many runs


def load_history(url: str | None) -> dict[str, Any]:
    if not url or not artifacts.exists(url):
        return {"version": HISTORY_VERSION, "runs": []}
    data = artifacts.read_json(url)
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ValueError(f"{url} is not a Stratos planner history (expected {{'runs': [...]}})")
    return data


@dataclass
class Calibration:
    """Values learned from measured runs; empty when there is no history."""

    mfu_logs: dict[str, list[float]] = field(default_factory=dict)  # device -> ln(measured MFU_ref)
    student_mfu_logs: dict[str, list[float]] = field(default_factory=dict)  # "device/student" -> ln(MFU_ref)
    example_tokens: dict[str, list[float]] = field(default_factory=dict)  # "task/student" -> tokens per example
    latency_logs: dict[str, list[float]] = field(default_factory=dict)  # device -> ln(measured / raw)
    accuracy_residuals: dict[str, list[float]] = field(default_factory=dict)  # "task/strategy" -> a - a_raw

    @classmethod
    def load(cls, url: str | None) -> "Calibration":
        return cls.from_runs(load_history(url)["runs"])

    @classmethod
    def from_runs(cls, runs: list[dict]) -> "Calibration":
        cal = cls()
        for r in runs:
            d, dev = r.get("derived", {}), r.get("device", "")
            if d.get("mfu_ref"):
                cal.mfu_logs.setdefault(dev, []).append(math.log(d["mfu_ref"]))
                cal.student_mfu_logs.setdefault(f"{dev}/{r.get('student')}", []).append(math.log(d["mfu_ref"]))
            if d.get("tokens_per_example"):
                cal.example_tokens.setdefault(f"{r.get('task')}/{r.get('student')}", []).append(
                    d["tokens_per_example"])
            if d.get("latency_factor"):
                cal.latency_logs.setdefault(dev, []).append(math.log(d["latency_factor"]))
            if d.get("accuracy_residual") is not None:
                cal.accuracy_residuals.setdefault(f"{r.get('task')}/{r.get('strategy')}", []).append(
                    d["accuracy_residual"])
        return cal

    def mfu(self, device: str, prior: float, student: str | None = None) -> float:
        """MFU on `device`: the prior shrunk towards this student's runs on the device when there are any
        (small models reach a lower MFU than large ones on the same device), else towards all the
        device's runs."""
        own = self.student_mfu_logs.get(f"{device}/{student}", []) if student else []
        logs = own or self.mfu_logs.get(device, [])
        return math.exp((PRIOR_WEIGHT * math.log(prior) + sum(logs)) / (PRIOR_WEIGHT + len(logs)))

    def tokens_per_example(self, task: str, student: str, prior: float) -> float:
        """Mean training tokens per example (prompt + target) of this student's tokenizer on this task:
        the median measured, else `prior` (the task's `example_tokens`)."""
        seen = sorted(self.example_tokens.get(f"{task}/{student}", []))
        return seen[len(seen) // 2] if seen else float(prior)

    def latency_factor(self, device: str) -> float:
        logs = self.latency_logs.get(device, [])
        return math.exp(sum(logs) / (PRIOR_WEIGHT + len(logs)))

    def accuracy_bias(self, task: str, strategy: str) -> float:
        res = self.accuracy_residuals.get(f"{task}/{strategy}", [])
        return sum(res) / (PRIOR_WEIGHT + len(res))

    def summary(self) -> dict[str, Any]:
        return {"runs_mfu": {k: len(v) for k, v in self.mfu_logs.items()},
                "runs_mfu_student": {k: len(v) for k, v in self.student_mfu_logs.items()},
                "runs_latency": {k: len(v) for k, v in self.latency_logs.items()},
                "runs_accuracy": {k: len(v) for k, v in self.accuracy_residuals.items()}}


def _run_estimate(plan: dict, measured: dict) -> tuple[dict, dict, str]:
    run = plan.get("run")
    if not run:
        raise ValueError("plan.json has no 'run' estimate (the plan stage writes one for the configured "
                         "teacher, student and strategy on servers.run_server)")
    strategy = measured.get("strategy") or run["strategy"]
    if strategy not in run["estimates"]:
        raise ValueError(f"no estimate for strategy {strategy!r} in plan.json (has: {sorted(run['estimates'])}); "
                         f"pass measured['strategy'] = the strategy the distill stage resolved")
    return run, run["estimates"][strategy], strategy


def latency_estimate(est: dict, measured: dict, raw: bool = False) -> float:
    """The plan's ms per generated token at the answer length the run measured.

    A measured per-token latency spreads each answer's time to first token over that answer's tokens,
    so it is compared with $t_{decode} + t_{ttft} / n$ at the measured median length $n$, not with the
    plan's figure at the task's typical output length: a barely trained student that stops after a
    token or two would otherwise read as many times slower than planned. Plans written before the
    estimate kept its parts give the plan's figure."""
    sfx = "_raw" if raw else ""
    n = measured.get("tokens_per_answer")
    if n and est.get(f"decode_ms_per_token{sfx}") is not None and est.get(f"ttft_ms{sfx}") is not None:
        return float(est[f"decode_ms_per_token{sfx}"]) + float(est[f"ttft_ms{sfx}"]) / max(float(n), 1.0)
    return float(est[f"latency_ms_per_token{sfx}"])


def ledger(plan: dict, measured: dict) -> list[dict[str, Any]]:
    """Rows {quantity, estimated, actual, ratio} for each measured quantity. Time and cost estimates
    are rescaled to the tokens actually trained (both are linear in tokens)."""
    bad = sorted(set(measured) - set(MEASURED_KEYS))
    if bad:
        raise ValueError(f"unknown measured keys {bad} (allowed: {', '.join(MEASURED_KEYS)})")
    run, est, _ = _run_estimate(plan, measured)
    scale = float(measured.get("tokens", run["tokens"])) / float(run["tokens"])
    actual_h = measured.get("train_hours")
    if actual_h is None and measured.get("train_seconds") is not None:
        actual_h = float(measured["train_seconds"]) / 3600.0
    # training time without the server's start-up (queueing, provisioning): the distill stage measures
    # its own wall time, and start-up is a catalog figure, not something a run calibrates
    train_h = est["train_hours"] - float(est.get("startup_hours") or 0.0)
    pairs = [("train_hours", train_h * scale, actual_h),
             ("cost_usd", est["cost_usd"] * scale, measured.get("cost_usd")),
             ("accuracy", est["accuracy"], measured.get("accuracy")),
             ("latency_ms_per_token", latency_estimate(est, measured), measured.get("latency_ms_per_token"))]
    rows = []
    for q, e, a in pairs:
        if a is None:
            continue
        a = float(a)
        rows.append({"quantity": q, "estimated": e, "actual": a, "ratio": (a / e) if e else None})
    return rows


def record_actuals(history_url: str, plan_json: dict | str, measured: dict[str, Any]) -> dict[str, Any]:
    """Append one run to the history at `history_url` and return its record (with `ledger` rows).

    plan_json: the plan stage's plan.json, as a dict or its URL.
    measured: any of train_hours | train_seconds (wall time of distillation), tokens (trained),
      cost_usd, accuracy (test, 0..1), latency_ms_per_token (p50 per generated token), tokens_per_answer
      (median generated tokens of the answers latency was measured on), strategy (as
      resolved by the distill stage: alignment | injection | labels_only), server (catalog name).
    """
    plan = artifacts.read_json(plan_json) if isinstance(plan_json, str) else plan_json
    rows = ledger(plan, measured)
    run, est, strategy = _run_estimate(plan, measured)
    if measured.get("server") not in (None, run["server"]):
        raise ValueError(f"the plan's run estimate is for server {run['server']!r}, not {measured['server']!r}")
    by_q = {r["quantity"]: r for r in rows}
    derived: dict[str, float] = {}
    if "train_hours" in by_q and by_q["train_hours"]["actual"] > 0:
        derived["mfu_ref"] = est["mfu_ref"] * by_q["train_hours"]["estimated"] / by_q["train_hours"]["actual"]
    if "latency_ms_per_token" in by_q and est.get("latency_ms_per_token_raw"):
        derived["latency_factor"] = by_q["latency_ms_per_token"]["actual"] / latency_estimate(est, measured, raw=True)
    if "accuracy" in by_q:
        derived["accuracy_residual"] = by_q["accuracy"]["actual"] - est["accuracy_raw"]
    if measured.get("tokens") and measured.get("steps") and measured.get("batch_size"):
        derived["tokens_per_example"] = float(measured["tokens"]) / (float(measured["steps"]) *
                                                                    float(measured["batch_size"]))
    record = {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "task": plan.get("task"), "teacher": run["teacher"],
              "student": run["student"], "strategy": strategy, "server": run["server"], "device": run["device"],
              "estimated": est, "measured": dict(measured), "derived": derived, "ledger": rows}
    history = load_history(history_url)
    history["runs"].append(record)
    artifacts.write_json(history_url, history)
    return record
