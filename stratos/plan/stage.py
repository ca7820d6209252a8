"""The plan stage: pick the server, teacher, student and strategy before anything is trained.

    python -m stratos +task=mahjong pipeline.stages=[plan]

Writes plan/plan.json (selected plan with estimates, front, baselines and the improvement over
them, excluded pairs with reasons, constraints, the run estimate for the ledger) and
plan/pareto.png, prints a short summary, and returns the manifest with `plan/*` metrics.
"""

from __future__ import annotations

from omegaconf import DictConfig

from stratos.artifacts import Manifest, StageContext
from stratos.plan.outputs import PARETO_PNG, PLAN_JSON
from stratos.plan.planner import executes_selected, pinned, plan
from stratos.plan.plot import plot_front


def summary(j: dict) -> str:
    s = j["selected"]
    e = s["estimates"]
    lines = [
        f"plan: {j['candidates']:,} candidates ({j['search']['method']}), {j['feasible']:,} feasible, "
        f"{j['pareto']} on the Pareto front, {len(j['excluded'])} pairs excluded",
        f"  chosen  {s['teacher']} -> {s['student']} ({s['strategy']}/{s['mode']}) on {s['server']} [{s['gpu']}]: "
        f"accuracy {e['accuracy']:.3f}, {e['latency_ms_per_token']:.2f} ms/token, {e['train_hours']:.2f} h, "
        f"${e['cost_usd']:.2f}, score {s['score']:.3f}",
    ]
    best = j.get("best_overall")
    if best and best.get("needs"):
        lines.append(f"  best overall (not runnable here) {best['teacher']} -> {best['student']} on {best['server']}: "
                     f"score {best['score']:.3f} ({'; '.join(best['needs'])})")
    for name, b in j["baselines"].items():
        be = b["estimates"]
        imp = j["improvement"][name]
        lines.append(f"  {name:<15} {b['teacher']} -> {b['student']} on {b['server']}: accuracy {be['accuracy']:.3f}, "
                     f"{be['latency_ms_per_token']:.2f} ms/token, ${be['cost_usd']:.2f}, score {b['score']:.3f}"
                     + ("" if imp is None else f" (chosen {imp:+.1f} %)"))
    return "\n".join(lines)


def run(cfg: DictConfig, ctx: StageContext) -> Manifest:
    result = plan(cfg)
    j = result.json
    if executes_selected(cfg, j["selected"]):  # this config is the plan applied: say what decided each value
        from stratos.plan.calibration import Calibration
        from stratos.plan.decisions import as_run, decisions

        pins = sorted(pinned(cfg))
        decided = [d.name for d in decisions(cfg, j, pins, Calibration())]
        j["decisions"] = [d.as_dict() for d in as_run(cfg, pins, decided)]
    ctx.write_json(PLAN_JSON, j)
    plot_front(ctx.path(PARETO_PNG), result.F_feasible, result.F_front, result.chosen, result.baselines,
               title=f"{j['task']}: {j['pareto']} Pareto-optimal of {j['feasible']:,} feasible plans")
    print(summary(j), flush=True)
    e = j["selected"]["estimates"]
    metrics = {
        "plan/candidates": j["candidates"], "plan/feasible": j["feasible"], "plan/pareto": j["pareto"],
        "plan/excluded": len(j["excluded"]), "plan/score": j["selected"]["score"],
        "plan/accuracy": e["accuracy"], "plan/latency_ms_per_token": e["latency_ms_per_token"],
        "plan/train_hours": e["train_hours"], "plan/cost_usd": e["cost_usd"],
    }
    for name, v in j["improvement"].items():
        if v is not None:
            metrics[f"plan/improvement_pct/{name}"] = v
    return ctx.manifest(metrics=metrics)
