"""Shared by the ACME benchmarks: run (or reuse) the ACME stage for several seeds, format tables.

Every benchmark compares against baselines measured in the same run (centralised bytes, FedAvg
and shared models, highest-accuracy selection), so seeds are the unit of repetition. Runs are
cached in `<out>/seed<k>/acme/` by config hash: the three benchmarks share them, `--fresh` redoes.
Benchmarks set `acme.clients.upload_head=true` so one run yields both the
importance-only protocol and the head-upload variant (the ledger keeps head bytes apart).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time

import numpy as np

from stratos import artifacts

BENCH_OVERRIDES = ["acme.clients.upload_head=true"]


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="outputs/bench/acme")
    ap.add_argument("--engine", default="inline", choices=["inline", "local", "slurm", "auto"],
                    help="inline is fastest; local/slurm run every tier as its own job (same numbers)")
    ap.add_argument("--fresh", action="store_true", help="ignore cached runs")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    return ap


def run_seeds(args) -> list[dict]:
    """report.json of the ACME stage per seed (+ '_cfg': the composed config, '_seconds')."""
    from stratos.acme.__main__ import compose_acme
    from stratos.acme.app import run
    from stratos.artifacts import StageContext

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    reports = []
    for seed in args.seeds:
        cfg = compose_acme([*BENCH_OVERRIDES, f"acme.executor.kind={args.engine}", f"seed={seed}",
                            *args.overrides])
        h = artifacts.config_hash(cfg.acme, cfg.device_classes, cfg.seed)
        run_dir = os.path.abspath(os.path.join(args.out, f"seed{seed}"))
        stage_dir = os.path.join(run_dir, "acme")
        manifest = os.path.join(stage_dir, artifacts.MANIFEST_NAME)
        fresh = args.fresh or not os.path.exists(manifest) or artifacts.read_json(manifest)["config_hash"] != h
        t0 = time.time()
        if fresh:
            shutil.rmtree(stage_dir, ignore_errors=True)
            ctx = StageContext(run_dir=run_dir, stage="acme", config_hash=h)
            m = run(cfg, ctx)
            artifacts.write_json(manifest, artifacts.asdict_manifest(m))
        rep = artifacts.read_json(os.path.join(stage_dir, "report.json"))
        rep["_cfg"], rep["_seconds"], rep["_cached"] = cfg, round(time.time() - t0, 1), not fresh
        reports.append(rep)
    return reports


def mean_std(xs) -> str:
    xs = np.asarray(xs, dtype=float)
    return f"{xs.mean():.3f} ± {xs.std(ddof=1) if len(xs) > 1 else 0.0:.3f}"


def table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in r] for r in [header, *rows]]
    w = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in cells]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)
