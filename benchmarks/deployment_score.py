"""Measure the plan's claim: the chosen plan vs the accuracy-, cost- and latency-first plans, executed.

    python -m benchmarks.deployment_score                     # 3 seeds, Slurm server too when it is up
    python -m benchmarks.deployment_score --seeds 0 --deadline-h 0.01   # a quick look

1. Plans once from an empty calibration history (`<out>/history.json`), over the runnable candidates
   of this machine (this machine in-process, the `debug` Slurm partition when `sinfo` shows it) with
   `planner.train_shares=[0.25,0.5,1.0]`, so training longer or shorter is a decision too. It keeps
   the chosen plan and the three single-objective baselines (the same selection code as plan.json).
2. Executes every distinct plan for every seed through the real CLI, every decision pinned to the
   plan's (`student=... trainer.max_steps=... servers.run_server=...`), all runs recording into the
   same history: each run's own plan.json carries the estimate made just before it, with the
   calibration learnt from the runs before it; its ledger.json holds estimate and measurement.
3. Scores the executed plans on *measured* accuracy (test split), latency per generated token,
   training hours (the distill stage, plus the server's start-up) and cost (the server's stated price
   for those hours), with the planner's weights and utilities normalised over the executed set
   (stratos/plan/select.py), and prints the chosen plan's improvement over each baseline per seed
   (mean and spread), plus the prediction error of training time and accuracy after 0, 1 and 3 runs.

Plans that coincide (the chosen plan is often one of the baselines) run once and share their figures.
Writes `<out>/deployment_score.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

BASE = ["+task=mahjong", "task.curriculum=[]", "planner.train_shares=[0.25,0.5,1.0]"]  # one mix, as measured
KINDS = ("chosen", "accuracy_first", "cost_first", "latency_first")


def slurm_up(partition: str) -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%a"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "up"


def initial_plans(overrides: list[str]):
    """(config, {kind: plan}): the chosen plan and the baselines, planned once from the (empty) history."""
    from hydra import compose, initialize_config_module

    from stratos.config import CONFIG_PACKAGE, register_configs
    from stratos.plan.planner import plan

    register_configs()
    with initialize_config_module(config_module=CONFIG_PACKAGE, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    j = plan(cfg).json
    return cfg, {"chosen": j["selected"], **j["baselines"]}


def pins_of(cfg, p: dict) -> list[str]:
    """Every decision of plan `p` as an override: the run is exactly that plan (steps as the CLI would
    decide them: stratos/plan/execute.py)."""
    from stratos.plan.calibration import Calibration
    from stratos.plan.decisions import planned_steps

    steps = planned_steps(cfg, p, int(cfg.trainer.batch_size), Calibration())
    mode = [f"strategy.alignment.mode={p['mode']}"] if p["strategy"] == "alignment" else []
    return [f"teacher={p['teacher']}", f"student={p['student']}", f"strategy={p['strategy']}", *mode,
            f"servers.run_server={p['server']}", f"trainer.max_steps={steps}"]


def key_of(p: dict) -> tuple:
    return (p["server"], p["teacher"], p["student"], p["strategy"], p["mode"], round(p["train_share"], 4))


def run_once(overrides: list[str], out_root: str, log_path: str) -> str:
    """One real CLI run; returns its run directory."""
    cmd = [sys.executable, "-m", "stratos", *overrides, f"paths.output_root={out_root}"]
    t0 = time.time()
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise SystemExit(f"deployment_score: run failed (exit {rc}), see {log_path}: {' '.join(cmd)}")
    with open(log_path) as f:
        run_dir = next(line.split("run dir: ", 1)[1].strip() for line in f if "run dir: " in line)
    print(f"  ran in {time.time() - t0:.0f} s -> {run_dir}", flush=True)
    return run_dir


def measured(run_dir: str) -> dict:
    """Measured objectives of one run, and the run's own estimates (plan.json) and ledger rows."""
    rep = json.load(open(os.path.join(run_dir, "report.json")))
    plan = json.load(open(os.path.join(run_dir, "plan", "plan.json")))
    led = {r["quantity"]: r for r in json.load(open(os.path.join(run_dir, "ledger.json")))["rows"]}
    run = plan["run"]
    est = run["estimates"][run["strategy"]]
    d = rep["metrics"]["distill"]
    hours = float(d["seconds"]) / 3600.0 + float(est.get("startup_hours") or 0.0)
    tps = rep["metrics"]["student"]["tokens_per_s"]
    return {"accuracy": rep["metrics"]["student"]["accuracy"], "latency_ms_per_token": 1000.0 / tps,
            "train_hours": hours, "cost_usd": float(est["price_hour"]) * hours,
            "predicted": {"accuracy": led["accuracy"]["estimated"], "train_hours": led["train_hours"]["estimated"],
                          "latency_ms_per_token": est["latency_ms_per_token"]},
            "actual_train_hours": led["train_hours"]["actual"], "run_dir": run_dir}


def scores(rows: list[dict], weights: dict) -> np.ndarray:
    """Deployment score of each executed run, utilities normalised over the executed set."""
    from stratos.plan import select as SEL

    F = np.array([[-r["accuracy"], r["latency_ms_per_token"], r["train_hours"], r["cost_usd"]] for r in rows])
    return SEL.deployment_score(F, F, SEL.check_weights(weights), True)


def rel_err(pred: float, actual: float) -> float:
    return abs(pred - actual) / abs(actual) if actual else float("nan")


def errors_after(errors: list[float], n: int) -> float:
    """The prediction error of run n+1 (n runs recorded before it); from n = 3 on, the median over every run
    with at least n recorded before it, so one noisy run does not stand for the calibrated planner."""
    tail = [e for e in errors[n:] if e == e]  # NaN: nothing measured to compare with
    if not tail:
        return float("nan")
    return tail[0] if n < 3 else float(statistics.median(tail))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--deadline-h", type=float, default=0.02, help="training deadline per run (hours)")
    ap.add_argument("--partition", default="debug", help="Slurm partition to offer when sinfo shows it up")
    ap.add_argument("--out", default="outputs/bench/deployment_score")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    a = ap.parse_args(argv)
    out = os.path.abspath(a.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    history = os.path.join(out, "history.json")
    base = [*BASE, f"constraints.deadline_h={a.deadline_h}", f"planner.history={history}", *a.overrides]
    if slurm_up(a.partition):
        base.append(f"servers.slurm.partition={a.partition}")
    else:
        print(f"deployment_score: Slurm partition {a.partition!r} not up: this machine is the only runnable server")
    cfg, plans = initial_plans(base)
    weights = {"accuracy": 0.4, "latency": 0.2, "train_time": 0.1, "cost": 0.3}
    distinct: dict[tuple, list[str]] = {}
    for kind, p in plans.items():
        distinct.setdefault(key_of(p), []).append(kind)
        print(f"{kind:<15} {p['teacher']} -> {p['student']} ({p['strategy']}/{p['mode']}) on {p['server']}, "
              f"share {p['train_share']:.2f}: predicted accuracy {p['estimates']['accuracy']:.3f}, "
              f"{p['estimates']['train_hours']:.4f} h, ${p['estimates']['cost_usd']:.4f}")
    results: dict[int, dict[tuple, dict]] = {}
    order = []
    for seed in a.seeds:
        results[seed] = {}
        for key, kinds in distinct.items():
            p = plans[kinds[0]]
            print(f"seed {seed}: {'/'.join(kinds)}", flush=True)
            run_dir = run_once([*base, *pins_of(cfg, p), f"seed={seed}"],
                               os.path.join(out, "runs", f"{'_'.join(kinds)}"), os.path.join(out, f"log_{seed}_{kinds[0]}.txt"))
            results[seed][key] = measured(run_dir)
            order.append(results[seed][key])
    # improvement of the chosen plan per seed, scored on measured figures over that seed's executed set
    imp: dict[str, list[float]] = {k: [] for k in KINDS[1:]}
    for seed in a.seeds:
        keys = list(distinct)
        s = scores([results[seed][k] for k in keys], weights)
        by_kind = {kind: s[i] for i, k in enumerate(keys) for kind in distinct[k]}
        for k in KINDS[1:]:
            imp[k].append(100.0 * (by_kind["chosen"] - by_kind[k]) / by_kind[k] if by_kind[k] > 0 else float("nan"))
    errors = {q: [rel_err(r["predicted"][q], r["actual_train_hours"] if q == "train_hours" else r["accuracy"])
                  for r in order] for q in ("train_hours", "accuracy")}
    after = {n: {q: errors_after(errors[q], n) for q in errors} for n in (0, 1, 3) if n < len(order)}
    summary = {"plans": {k: {kk: p[kk] for kk in ("server", "teacher", "student", "strategy", "mode", "train_share")}
                         for k, p in plans.items()},
               "measured": {str(seed): {"/".join(distinct[k]): {kk: v for kk, v in r.items() if kk != "predicted"}
                                        for k, r in results[seed].items()} for seed in a.seeds},
               "improvement_pct": {k: v for k, v in imp.items()}, "prediction_error_after_runs": after,
               "prediction_errors_in_order": errors, "seeds": a.seeds, "deadline_h": a.deadline_h}
    with open(os.path.join(out, "deployment_score.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("\nmeasured (mean over seeds)")
    print(f"{'plan':<44} {'accuracy':>9} {'ms/token':>9} {'train h':>9} {'cost $':>9}")
    for k, kinds in distinct.items():
        rs = [results[s][k] for s in a.seeds]
        print(f"{'/'.join(kinds):<44} {statistics.fmean(r['accuracy'] for r in rs):9.3f} "
              f"{statistics.fmean(r['latency_ms_per_token'] for r in rs):9.2f} "
              f"{statistics.fmean(r['train_hours'] for r in rs):9.4f} {statistics.fmean(r['cost_usd'] for r in rs):9.5f}")
    print("\nchosen plan vs baseline, measured deployment score (target >= +22 %)")
    for k, v in imp.items():
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        same = "  (the same plan as chosen)" if any(k in ks and "chosen" in ks for ks in distinct.values()) else ""
        print(f"  vs {k:<15} {statistics.fmean(v):+7.1f} % +- {sd:.1f} (per seed: "
              f"{', '.join(f'{x:+.1f}' for x in v)}){same}")
    print("\nprediction error |predicted - measured| / measured, by runs recorded before the prediction")
    for n, e in after.items():
        print(f"  after {n if n < 3 else '>= 3'} run(s): training time {e['train_hours']:.1%}, accuracy {e['accuracy']:.1%}")
    print(f"\nwritten {os.path.join(out, 'deployment_score.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
