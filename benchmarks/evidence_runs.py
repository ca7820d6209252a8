"""Shared by the evidence benchmarks that compare conditions over seeds with full CLI runs (cross_tokenizer,
on_policy, multi_teacher): the run settings, one CLI run, the seed x condition loop, what a finished run holds.

Layout: each run is `python -m stratos ... hydra.run.dir=<run_dir>` with its log in `<run_dir>.log`; a condition's
runs sit in `<out>/runs/<condition>/seed<N>/`, teachers beside `runs/`. A run whose `evaluate/manifest.json`
exists is finished and is read, not run again, so a benchmark re-run over the same `--out` resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable


def add_run_args(ap: argparse.ArgumentParser, *, teacher_steps: int, teacher_batch: int, n_val: int, threads: int,
                 teacher_steps_help: str | None = None) -> None:
    """The arguments every such benchmark takes (seeds, run sizes, data sizes, threads, --out)."""
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--teacher-steps", type=int, default=teacher_steps, help=teacher_steps_help)
    ap.add_argument("--teacher-batch", type=int, default=teacher_batch)
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-val", type=int, default=n_val)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--threads", type=int, default=threads)
    ap.add_argument("--out", default=None, help="run directories (default: a temporary one)")


def out_dir(a, prefix: str) -> str:
    """`--out` as an absolute path, or a new temporary directory."""
    return os.path.abspath(a.out or tempfile.mkdtemp(prefix=prefix))


def common(a, steps: int, batch: int, task: str = "mahjong") -> list[str]:
    """The settings of every run: the task's data sizes, `steps` at `batch`, one val pass and one checkpoint at the
    end, data -> distill -> evaluate, outputs under `a.out`. Mahjong trains on one mix (`task.curriculum=[]`): the
    evidence built on these runs was measured before the default became a curriculum, and reproduces so."""
    one_mix = ["task.curriculum=[]"] if task == "mahjong" else []
    return [f"+task={task}", *one_mix, f"task.n_train={a.n_train}", f"task.n_val={a.n_val}", f"task.n_test={a.n_test}",
            f"trainer.max_steps={steps}", f"trainer.batch_size={batch}", "trainer.max_minutes=0",
            f"trainer.num_threads={a.threads}", "trainer.progress_bar=false", f"trainer.val_every_n_steps={steps}",
            f"trainer.checkpoint_every_n_steps={steps}", "pipeline.stages=[data,distill,evaluate]",
            f"paths.output_root={a.out}"]


def cli(overrides: list[str], run_dir: str) -> float:
    """One CLI run into `run_dir` (log: `<run_dir>.log`); its seconds. Exits on failure."""
    t0 = time.time()
    with open(f"{run_dir}.log", "w") as log:
        r = subprocess.run([sys.executable, "-m", "stratos", *overrides, f"hydra.run.dir={run_dir}"],
                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(f"run failed (exit {r.returncode}): see {run_dir}.log")
    return time.time() - t0


def ensure_run(overrides: list[str], run_dir: str) -> None:
    """Run the CLI into `run_dir` unless a finished run is there (its evaluate manifest)."""
    os.makedirs(os.path.dirname(run_dir), exist_ok=True)
    if not os.path.exists(os.path.join(run_dir, "evaluate", "manifest.json")):
        cli(overrides, run_dir)


def run_grid(out: str, seeds: list[int], conditions: list[str], overrides: Callable[[str, int], list[str]],
             read: Callable[[str], dict], line: Callable[[str, int, dict], str]) -> dict[str, dict[int, dict]]:
    """For each seed, each condition: run (or reuse) `<out>/runs/<condition>/seed<N>`, read it, print its line.
    Returns {condition: {seed: read(run_dir)}}."""
    res: dict[str, dict[int, dict]] = {c: {} for c in conditions}
    for seed in seeds:
        for cond in conditions:
            run_dir = os.path.join(out, "runs", cond, f"seed{seed}")
            ensure_run(overrides(cond, seed), run_dir)
            r = res[cond][seed] = read(run_dir)
            print(line(cond, seed, r), flush=True)
    return res


def load_run(run_dir: str) -> tuple:
    """(distill manifest, evaluate manifest, strategy.json, last held-out val/ce or None) of a finished run."""
    from stratos.artifacts import Manifest
    from stratos.distill.outputs import read_train_metrics

    di = Manifest.load(os.path.join(run_dir, "distill", "manifest.json"))
    ev = Manifest.load(os.path.join(run_dir, "evaluate", "manifest.json"))
    with open(os.path.join(run_dir, "distill", "strategy.json")) as f:
        strategy = json.load(f)
    val_ce = [r["val/ce"] for r in read_train_metrics(di) if "val/ce" in r]
    return di, ev, strategy, val_ce[-1] if val_ce else None


def eval_metrics(run_dir: str) -> dict:
    """The evaluate stage's metrics of a finished run (e.g. a trained teacher's)."""
    from stratos.artifacts import Manifest

    return Manifest.load(os.path.join(run_dir, "evaluate", "manifest.json")).metrics


def mean_std(xs: list[float], digits: int, signed: bool = False) -> str:
    """Mean ± sample standard deviation (0 for one value)."""
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.fmean(xs):{'+' if signed else ''}.{digits}f} ± {sd:.{digits}f}"
