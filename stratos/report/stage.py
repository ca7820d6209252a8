"""Report stage: gather every stage's manifest into report.json (machines), report.md (people)
and a short console table. Written into the stage directory and at the top of the run directory.

report.json keys: task, plan {selected, candidates, pareto, baselines, improvement}, strategy {name, mode,
reason, teacher_probe_accuracy, kept, rejected, refused, routing (several teachers: by, reason, assignment,
probe table, rows and supervised-token shares per teacher; None with one)}, metrics {student (the headline `test` split),
test_splits {split: accuracy, n, by_difficulty, n_by_difficulty, distribution} for `test` and every extra
test split (e.g. Mahjong's test_natural), teacher}, curve (the distill
stage's step metrics as its CSV logger wrote them: first, last and up to CURVE_POINTS rows), export, deploy,
timings (seconds per stage), stages (config hash per stage), config (resolved).
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from stratos import artifacts
from stratos.artifacts import Manifest, StageContext
from stratos.data.outputs import STATS_JSON
from stratos.distill.outputs import ROUTING_JSON, STRATEGY_JSON, read_train_metrics
from stratos.plan.outputs import PARETO_PNG, PLAN_JSON
from stratos.plan.record import preview
from stratos.report.render import console_table, markdown

log = logging.getLogger("stratos")


def _read(m: Manifest | None, name: str, default=None):
    if m is None or name not in m.outputs or not artifacts.exists(m.outputs[name]):
        return default
    return artifacts.read_json(m.outputs[name])


CURVE_POINTS = 12  # rows of the loss curve shown in report.md: evenly spaced, the first and the last included
CURVE_KEYS = ("train/loss", "val/loss", "train/lr", "train/tokens_per_s")


def curve_summary(rows: list[dict]) -> dict | None:
    """The loss curve in a few rows: every step's train/val loss would swamp the report (the CSV has them)."""
    if not rows:
        return None
    n, k = len(rows), min(len(rows), CURVE_POINTS)
    picked = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})
    keep = [{"step": rows[i]["step"], **{k: rows[i][k] for k in CURVE_KEYS if k in rows[i]}} for i in picked]
    losses = [r for r in rows if "train/loss" in r]
    return {"logged_steps": n, "first_loss": losses[0]["train/loss"] if losses else None,
            "last_loss": losses[-1]["train/loss"] if losses else None,
            "last_step": rows[-1]["step"], "points": keep}


def held_out_splits(ev: dict, distributions: dict | None) -> dict[str, dict]:
    """Every test split the evaluate stage scored (`test` first), with its per-difficulty accuracy and counts."""
    names = sorted({k.split("/")[1] for k in ev if k.startswith("evaluate/test") and k.endswith("/accuracy")},
                   key=lambda s: (s != "test", s))
    return {s: {"accuracy": ev.get(f"evaluate/{s}/accuracy"), "n": ev.get(f"evaluate/{s}/n"),
                "by_difficulty": ev.get(f"evaluate/{s}/by_difficulty"),
                "n_by_difficulty": ev.get(f"evaluate/{s}/n_by_difficulty"),
                "distribution": (distributions or {}).get(s)} for s in names}


def build_report(cfg: DictConfig, inputs: dict[str, Manifest]) -> dict:
    plan = _read(inputs.get("plan"), PLAN_JSON, {})
    strategy = _read(inputs.get("distill"), STRATEGY_JSON, {})
    dm = inputs["distill"].metrics if "distill" in inputs else {}
    ev = inputs["evaluate"].metrics if "evaluate" in inputs else {}
    ex = inputs["export"].metrics if "export" in inputs else {}
    stats = _read(inputs.get("data"), STATS_JSON, {})
    routing = _read(inputs.get("distill"), ROUTING_JSON)  # several teachers: route, reason, shares, probe table
    report = {
        "task": cfg.task.name,
        "data": {"synthetic": stats.get("synthetic"), "difficulty": stats.get("difficulty"),
                 **{k.split("/", 1)[1]: v for k, v in (inputs["data"].metrics if "data" in inputs else {}).items()}},
        "plan": {
            "selected": plan.get("selected"),
            "candidates": plan.get("candidates"),
            "pareto": plan.get("pareto"),
            "baselines": plan.get("baselines"),
            "improvement": plan.get("improvement"),
            "executed": {"teacher": "+".join(cfg.teachers) if cfg.get("teachers") else cfg.teacher.name,
                         "student": cfg.student.name, "strategy": cfg.strategy.name,
                         "server": cfg.servers.run_server},
            "decisions": plan.get("decisions"),
            "best_overall": plan.get("best_overall"),
        },
        "strategy": {
            "name": strategy.get("name"),
            "mode": strategy.get("mode"),
            "reason": strategy.get("reason"),
            "teacher_probe_accuracy": strategy.get("teacher_probe_accuracy"),
            "features": strategy.get("features"),
            "refused": strategy.get("refused"),
            "on_policy": {**(strategy.get("on_policy") or {}),
                          **{k.split("/")[-1]: v for k, v in dm.items() if k.startswith("distill/on_policy/")}},
            "kept": dm.get("strategy/kept"),
            "rejected": dm.get("strategy/rejected"),
            "routing": routing,  # None with one teacher
        },
        "metrics": {
            "student": {"accuracy": ev.get("evaluate/test/accuracy"), "n": ev.get("evaluate/test/n"),
                        "by_difficulty": ev.get("evaluate/test/by_difficulty"),
                        "n_by_difficulty": ev.get("evaluate/test/n_by_difficulty"),
                        "latency_ms_p50": ev.get("evaluate/latency_ms_p50"),
                        "latency_ms_p95": ev.get("evaluate/latency_ms_p95"),
                        "tokens_per_s": ev.get("evaluate/tokens_per_s")},
            "test_splits": held_out_splits(ev, stats.get("test_distribution")),
            "teacher": {"accuracy": ev.get("evaluate/teacher/accuracy"), "n": ev.get("evaluate/teacher/n")},
            "distill": {k.split("/", 1)[1]: v for k, v in dm.items() if k.startswith("distill/")},
        },
        "curve": curve_summary(read_train_metrics(inputs["distill"])) if "distill" in inputs else None,
        "export": {"onnx_max_abs_diff": ex.get("export/onnx_max_abs_diff"),
                   **{k.split("/", 1)[1]: v for k, v in ex.items() if k.startswith("export/")}},
        "deploy": {k.split("/", 1)[1]: v for k, v in ex.items() if k.startswith("deploy/")},
        "timings": {name: m.seconds for name, m in inputs.items()},
        "stages": {name: m.config_hash for name, m in inputs.items()},
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    return report


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    report = build_report(cfg, ctx.inputs)
    report["ledger"] = preview(ctx.inputs)  # recorded into the planner's history by the pipeline, after this
    plot = None
    if "plan" in ctx.inputs and PARETO_PNG in ctx.inputs["plan"].outputs:
        plot = "plan/pareto.png"
    md = markdown(report, plot)
    ctx.write_json("report.json", report)
    ctx.write_text("report.md", md)
    artifacts.write_json(artifacts.join(ctx.run_dir, "report.json"), report)
    artifacts.write_text(artifacts.join(ctx.run_dir, "report.md"), md)
    print(console_table(report))
    return ctx.manifest(metrics={"report/student_accuracy": report["metrics"]["student"]["accuracy"]})
