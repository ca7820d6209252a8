"""One summary for a whole sweep: every job's results in a table, a JSON file and a Pareto plot.

    python -m stratos -m +task=mahjong student=a,b strategy=x,y hydra/launcher=stratos_slurm
    python -m stratos.sweep outputs/sweeps/2026-11-23_20-00-00            # any time, also mid-sweep

or at the end of every multirun, as a Hydra callback (in conf/config.yaml):

    hydra:
      callbacks:
        sweep_summary:
          _target_: stratos.sweep.SweepSummary

A run is any directory under the sweep holding `config.yaml` (the resolved config the CLI writes);
its metrics are the union of its stages' `manifest.json` metrics. Columns are the config keys
whose values differ between runs (what the sweep varied), the run's status (`done`, or the
stages still missing after a crash/preemption) and headline metrics. The Pareto front is taken
over `objectives` (default: accuracy up, latency down) with pymoo's non-dominated sorting; runs
lacking an objective are listed but never on the front.

Writes `<sweep>/sweep_summary.json`, `<sweep>/sweep_summary.md` and `<sweep>/sweep_pareto.png`.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import yaml

from stratos import artifacts

log = logging.getLogger("stratos")

DEFAULT_OBJECTIVES = ("evaluate/test/accuracy:max", "evaluate/latency_ms_p50:min")
HEADLINE = ("evaluate/test/accuracy", "evaluate/latency_ms_p50", "export/onnx_p50_ms", "distill/train/loss",
            "distill/seconds", "plan/cost_usd")
STAGES = ("plan", "data", "distill", "evaluate", "export", "report")  # when a config cannot say
IGNORED_KEYS = ("paths.", "hydra.", "exp_name")  # differ per run by construction, not by choice


@dataclass
class Run:
    name: str  # path relative to the sweep dir
    status: str  # "done" | "missing: <stages>"
    label: str = ""  # the swept values, e.g. "student=tiny_llama strategy=alignment" (name when none)
    params: dict[str, Any] = field(default_factory=dict)  # the swept config values
    metrics: dict[str, Any] = field(default_factory=dict)
    pareto: bool = False


USER_ERROR = "stratos: error: "  # how the CLI prints a user mistake (stratos/cli.py)
JOB_ERRORS = ("UncompletedJobError", "FailedJobError")  # submitit's, for a job without a result / that raised


def job_user_error(exc: BaseException) -> str | None:
    """The one-line user error a failed sweep job printed, as "sweep job <id>: <line>"; None for anything else.

    A job on a submitit launcher that stops on a user mistake prints "stratos: error: ..." and exits 2, so it writes
    no result and submitit raises UncompletedJobError ("Job ... has not produced any output") in the launching
    process, with the job's error stream in the message: the line is read back from there. A job that failed on a
    bug has no such line (its traceback is the message): None, so the caller keeps the traceback."""
    if type(exc).__name__ not in JOB_ERRORS:
        return None
    text = str(exc)
    lines = [x.split(USER_ERROR, 1)[1].strip() for x in text.splitlines() if USER_ERROR in x]
    if not lines:
        return None
    job = text.split()[1] if text.startswith("Job ") else "?"
    return f"sweep job {job}: {lines[-1]}"


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


def find_runs(sweep_dir: str) -> list[str]:
    """Directories under `sweep_dir` (submitit's folder excluded) that hold a `config.yaml`."""
    runs = []
    for root, dirs, files in os.walk(sweep_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if "config.yaml" in files:
            runs.append(root)
            dirs[:] = []  # stage directories below a run are not runs
    return runs


def expected_stages(raw: dict) -> list[str]:
    """The stages this run's config asks for (the pipeline's own rule), else all of them."""
    from omegaconf import OmegaConf

    from stratos.pipeline import stage_order

    try:
        return stage_order(OmegaConf.create(raw))
    except Exception:  # a config from another version: fall back to every stage
        return list(STAGES)


def load_run(path: str, sweep_dir: str) -> tuple[Run, dict[str, Any]]:
    with open(os.path.join(path, "config.yaml")) as f:
        raw = yaml.safe_load(f) or {}
    config = _flatten(raw)
    from stratos.pipeline import ORDER

    stages = expected_stages(raw)
    metrics: dict[str, Any] = {}
    done = []
    for stage in ORDER:
        url = os.path.join(path, stage, artifacts.MANIFEST_NAME)
        if os.path.exists(url):
            try:
                m = artifacts.read_json(url)
            except ValueError:  # cannot happen with atomic writes; report rather than crash the summary
                continue
            done.append(stage)
            metrics.update({k: v for k, v in m.get("metrics", {}).items() if _scalar(v)})
    missing = [s for s in stages if s not in done]
    status = "done" if not missing else "missing: " + ",".join(missing)
    return Run(os.path.relpath(path, sweep_dir), status, metrics=metrics), config


def parse_objectives(specs: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        key, _, sense = spec.rpartition(":")
        if not key or sense not in ("min", "max"):
            from stratos.errors import bad_value

            raise bad_value("objective", spec, "METRIC:min or METRIC:max, e.g. evaluate/test/accuracy:max")
        out.append((key, sense))
    return out


def pareto_front(runs: list[Run], objectives: list[tuple[str, str]]) -> list[int]:
    """Indices of runs on the non-dominated front over `objectives` (all minimised internally)."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    idx = [i for i, r in enumerate(runs)
           if all(isinstance(r.metrics.get(k), (int, float)) and math.isfinite(r.metrics[k]) for k, _ in objectives)]
    if not idx:
        return []
    # F: (n_runs_with_all_objectives, n_objectives); maximised objectives are negated
    F = np.array([[(-1.0 if s == "max" else 1.0) * float(runs[i].metrics[k]) for k, s in objectives] for i in idx])
    if len(idx) == 1:
        return idx
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    return sorted(idx[j] for j in front)


def summarize(sweep_dir: str, objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> dict[str, Any]:
    """Collect the runs, mark the front, write json/md/png next to them; returns the JSON object."""
    objs = parse_objectives(objectives)
    loaded = [load_run(p, sweep_dir) for p in find_runs(sweep_dir)]
    runs = [r for r, _ in loaded]
    configs = [c for _, c in loaded]
    keys = sorted({k for c in configs for k in c})
    varying = [k for k in keys if not k.startswith(IGNORED_KEYS)
               and len({repr(c.get(k)) for c in configs}) > 1 and all(_scalar(c.get(k)) for c in configs)]
    for r, c in zip(runs, configs):
        r.params = {k: c.get(k) for k in varying}
        r.label = " ".join(f"{k}={_fmt(v)}" for k, v in r.params.items()) or r.name
    for i in pareto_front(runs, objs):
        runs[i].pareto = True
    summary = {
        "sweep_dir": os.path.abspath(sweep_dir),
        "objectives": [f"{k}:{s}" for k, s in objs],
        "varied": varying,
        "n_runs": len(runs),
        "n_done": sum(r.status == "done" for r in runs),
        "pareto": [r.name for r in runs if r.pareto],
        "runs": [asdict(r) for r in runs],
    }
    artifacts.write_json(os.path.join(sweep_dir, "sweep_summary.json"), summary)
    artifacts.write_text(os.path.join(sweep_dir, "sweep_summary.md"), markdown(runs, varying, objs))
    if runs:
        plot(runs, objs, os.path.join(sweep_dir, "sweep_pareto.png"))
    return summary


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def markdown(runs: list[Run], varying: list[str], objs: list[tuple[str, str]]) -> str:
    cols = [*varying, "status", *dict.fromkeys([*(k for k, _ in objs), *HEADLINE]), "pareto"]
    lines = ["| run | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    # rows are named by what the sweep varied; the directory of each run is in sweep_summary.json
    for r in runs:
        cells = [_fmt(r.params.get(c)) if c in varying else r.status if c == "status"
                 else ("*" if r.pareto else "") if c == "pareto" else _fmt(r.metrics.get(c)) for c in cols]
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    front = "; ".join(r.label for r in runs if r.pareto) or "(no run has every objective yet)"
    head = f"# Sweep summary: {len(runs)} runs, {sum(r.status == 'done' for r in runs)} done\n\n"
    return head + "\n".join(lines) + f"\n\nPareto front over {', '.join(f'{k} ({s})' for k, s in objs)}: {front}\n"


def _short(r: Run) -> str:
    """Plot label: the swept values under their last key part (student.name=x -> name=x)."""
    if not r.params:
        return r.name
    tails = [k.rsplit(".", 1)[-1] for k in r.params]
    keys = tails if len(set(tails)) == len(tails) else list(r.params)
    return " ".join(f"{k}={_fmt(v)}" for k, v in zip(keys, r.params.values()))


def plot(runs: list[Run], objs: list[tuple[str, str]], path: str) -> None:
    """Scatter of the first two objectives (x = second, y = first), front joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (ky, sy), (kx, sx) = objs[0], objs[1] if len(objs) > 1 else objs[0]
    pts = [(r.metrics.get(kx), r.metrics.get(ky), r) for r in runs]
    pts = [(x, y, r) for x, y, r in pts if isinstance(x, (int, float)) and isinstance(y, (int, float))]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for x, y, r in pts:
        ax.scatter(x, y, c="tab:red" if r.pareto else "tab:gray", s=50 if r.pareto else 25, zorder=3)
        ax.annotate(_short(r), (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.margins(x=0.2, y=0.1)
    front = sorted((x, y) for x, y, r in pts if r.pareto)
    if len(front) > 1:
        ax.plot(*zip(*front), c="tab:red", lw=1, zorder=2, label="Pareto front")
        ax.legend()
    ax.set_xlabel(f"{kx} ({'lower' if sx == 'min' else 'higher'} is better)")
    ax.set_ylabel(f"{ky} ({'lower' if sy == 'min' else 'higher'} is better)")
    ax.set_title(f"Sweep: {len(runs)} runs, {len(pts)} with both metrics (red: Pareto front)")
    ax.grid(alpha=0.3)
    tmp = f"{path}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


try:  # the Hydra callback (hydra is a core dependency; the guard keeps `python -m stratos.sweep` light)
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[misc,assignment]


class SweepSummary(_HydraCallback):  # type: ignore[misc]
    """Hydra callback: summarise the sweep directory when a multirun ends."""

    def __init__(self, objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> None:
        self.objectives = list(objectives)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = str(config.hydra.sweep.dir)
        try:
            s = summarize(sweep_dir, self.objectives)
        except Exception as e:  # a summary must never turn a finished sweep into a failed one
            log.warning("sweep summary of %s failed: %s (run `python -m stratos.sweep %s`)", sweep_dir, e, sweep_dir)
            return
        front = [r["label"] for r in s["runs"] if r["pareto"]]
        log.info("sweep summary: %d runs (%d done), Pareto front %s -> %s/sweep_summary.md", s["n_runs"],
                 s["n_done"], front, sweep_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stratos.sweep", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir")
    p.add_argument("--objective", action="append", default=None,
                   help="METRIC:min|max, repeatable (default: %s)" % " ".join(DEFAULT_OBJECTIVES))
    a = p.parse_args(argv)
    from stratos.errors import UserError

    try:
        if not os.path.isdir(a.sweep_dir):
            raise UserError(f"sweep directory not found: {a.sweep_dir!r} (allowed: a Hydra multirun directory)")
        s = summarize(a.sweep_dir, a.objective or DEFAULT_OBJECTIVES)
    except UserError as e:
        print(f"stratos: error: {e}", file=sys.stderr)
        return 2
    with open(os.path.join(a.sweep_dir, "sweep_summary.md")) as f:
        print(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
