"""Planner at scale: 3,700 servers x 8 teachers x 8 students x 2 strategies = 473,600 candidates.

    python -m benchmarks.planner [--servers 3700] [--repeats 3]

Times, in one process and on the same candidates:
  fast   vectorised evaluation of every candidate + pymoo `find_non_dominated` over the feasible
         ones (what the plan stage runs), and the full `plan()` (selection, baselines, JSON) on top;
  brute  the same evaluation + Deb's continuously updated archive, one candidate at a time
         (`stratos.plan.front.archive_front`);
and checks that both fronts are the same set, plus an O(N |front|) certificate that the front is
exactly the non-dominated set (`verify_front`). Prints both timings and their ratio. Goal: fast <= 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from omegaconf import OmegaConf

from stratos.config import ServersConfig, DeployConfig, StratosConfig, StrategyConfig
from stratos.plan.front import archive_front, pareto_front, verify_front
from stratos.plan.planner import build_space, plan
from stratos.plan.problem import evaluate
from stratos.plan.zoo import load_option

TEACHERS = ["qwen2p5_7b", "qwen2p5_14b", "qwen2p5_32b", "qwen2p5_72b", "llama3p1_8b", "llama3p1_70b",
            "mahjong_engine", "tiny_teacher"]
STUDENTS = ["tiny_llama", "qwen2p5_0p5b", "qwen2p5_1p5b", "qwen2p5_3b", "llama3p2_1b", "llama3p2_3b",
            "smollm2_360m", "smollm2_1p7b"]


def bench_cfg(servers: int, task: str = "gsm8k"):
    cfg = OmegaConf.structured(StratosConfig)
    cfg.servers = OmegaConf.merge(OmegaConf.structured(ServersConfig), {
        "_target_": "stratos.plan.cost.build_cloud", "name": "synthetic", "synthetic_nodes": servers,
        "include_local": False})
    cfg.teacher = load_option("teacher", TEACHERS[0])
    cfg.student = load_option("student", STUDENTS[1])
    cfg.strategy = OmegaConf.merge(OmegaConf.structured(StrategyConfig), {"_target_": "x", "name": "alignment"})
    cfg.deploy = OmegaConf.merge(OmegaConf.structured(DeployConfig), {"_target_": "x", "name": "onnx"})
    cfg.task = {"name": task}
    cfg.planner.teachers = TEACHERS
    cfg.planner.students = STUDENTS
    cfg.planner.search = "enumerate"
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=3700)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    cfg = bench_cfg(args.servers)
    sp = build_space(cfg)
    setup = time.perf_counter() - t0
    print(f"space: {len(sp.cloud):,} servers x {len(sp.zoo.teachers)} teachers x {len(sp.zoo.students)} students x "
          f"{len(sp.strategies)} strategies = {sp.size:,} candidates (setup {setup:.2f} s: catalog, zoo, preflight)")

    fast_t, fast_c, plan_t, plan_c = [], [], [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        X = sp.enumerate_all()
        ev = evaluate(sp, X)
        feas = np.flatnonzero(ev.feasible)
        front = feas[pareto_front(ev.F[feas])]
        fast_t.append(time.perf_counter() - t)
        fast_c.append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        result = plan(cfg, space=sp)
        plan_t.append(time.perf_counter() - t)
        plan_c.append(time.process_time() - c)
    fast, fast_cpu = statistics.median(fast_t), statistics.median(fast_c)
    full, full_cpu = statistics.median(plan_t), statistics.median(plan_c)
    print(f"feasible {len(feas):,}, front {len(front)}")
    print("(wall = elapsed; cpu = this process's CPU seconds, which other jobs on a shared machine do not inflate)")
    print(f"fast   evaluate + pymoo front      median of {args.repeats}: wall {fast:.3f} s, cpu {fast_cpu:.3f} s   "
          f"(wall runs: {', '.join(f'{x:.3f}' for x in fast_t)})")
    print(f"plan() + selection, baselines, JSON median of {args.repeats}: wall {full:.3f} s, cpu {full_cpu:.3f} s   "
          f"(wall runs: {', '.join(f'{x:.3f}' for x in plan_t)})")

    t, c = time.perf_counter(), time.process_time()
    X = sp.enumerate_all()
    ev_b = evaluate(sp, X)
    feas_b = np.flatnonzero(ev_b.feasible)
    brute_front = feas_b[archive_front(ev_b.F[feas_b])]
    brute, brute_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"brute  evaluate + Deb archive (one candidate at a time): wall {brute:.3f} s, cpu {brute_cpu:.3f} s")
    same = np.array_equal(np.sort(front), np.sort(brute_front))
    t = time.perf_counter()
    certified = verify_front(ev.F[feas], np.searchsorted(feas, front))
    cert = time.perf_counter() - t
    print(f"fronts equal: {same} ({len(front)} vs {len(brute_front)} points); "
          f"certificate (no member dominated, every other point dominated): {certified} ({cert:.2f} s)")
    print(f"ratio brute / fast: wall {brute / fast:.1f}x, cpu {brute_cpu / fast_cpu:.1f}x; goal fast <= 1 s: "
          f"{'met' if fast <= 1.0 else 'MISSED'} (wall), {'met' if fast_cpu <= 1.0 else 'MISSED'} (cpu); "
          f"plan() <= 1 s: {'met' if full <= 1.0 else 'missed'} (wall), {'met' if full_cpu <= 1.0 else 'missed'} (cpu)")
    j = result.json
    print(f"chosen: {j['selected']['teacher']} -> {j['selected']['student']} ({j['selected']['strategy']}) on "
          f"{j['selected']['server']}, score {j['selected']['score']:.3f}; improvement % vs baselines: "
          + ", ".join(f"{k} {v:+.1f}" for k, v in j["improvement"].items() if v is not None))
    if not (same and certified):
        raise SystemExit("front mismatch")


if __name__ == "__main__":
    main()
