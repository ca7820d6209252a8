"""Explain an empty feasible set in one line: the binding constraint and the closest plans.

Constraints come in two kinds. Hard ones depend on the models and servers (pairing preflight,
GPUs per node, memory fit); the user's limits (constraints.budget_usd, deadline_h, latency_slo_ms,
min_accuracy, qps) are soft: relaxing one can admit a plan. Among candidates that pass the hard
constraints, each soft limit is tried alone: the smallest relaxation (relative to the current
value) that admits at least one plan names the binding constraint. When no single relaxation is
enough, the binding constraint is the largest violation of the closest plan (least summed
relative violation). The closest three plans follow with their values.
"""

from __future__ import annotations

import numpy as np

from stratos.errors import UserError
from stratos.plan.problem import CONSTRAINTS, Evaluation, Space

SOFT = {  # constraint -> (config key, estimate name, format, bigger-is-looser)
    "budget": ("constraints.budget_usd", "cost_usd", "${:.2f}", True),
    "deadline": ("constraints.deadline_h", "train_hours", "{:.2f} h", True),
    "latency": ("constraints.latency_slo_ms", "latency_ms_per_token", "{:.1f} ms/token", True),
    "accuracy": ("constraints.min_accuracy", "accuracy", "accuracy {:.3f}", False),
    "qps": ("constraints.qps", "qps_capacity", "{:.2f} qps capacity", False),
}
HARD = ("pairing", "gpus", "memory")


def label(sp: Space, X: dict[str, np.ndarray], i: int) -> str:
    z = sp.zoo
    return (f"{z.teachers[X['teacher'][i]].name}->{z.students[X['student'][i]].name} "
            f"{sp.strategies[X['strategy'][i]]} on {sp.cloud.servers.name[X['server'][i]]}")


def _limit(sp: Space, name: str) -> float:
    lim, w = sp.limits, sp.work
    return {"budget": lim.budget_usd, "deadline": lim.deadline_h, "latency": lim.latency_slo_ms,
            "accuracy": lim.min_accuracy, "qps": w.qps}[name]


def diagnose(sp: Space, X: dict[str, np.ndarray], ev: Evaluation) -> UserError:
    G = ev.G
    col = {c: i for i, c in enumerate(CONSTRAINTS)}
    if not (G[:, col["pairing"]] <= 0).any():
        return UserError("no plan: every teacher-student pair fails preflight (see planner.teachers / "
                         "planner.students; e.g. the student must be smaller than the teacher and hold planner.seq_len)")
    hard_ok = (G[:, [col[h] for h in HARD]] <= 0).all(axis=1)
    if not hard_ok.any():
        ok_pair = G[:, col["pairing"]] <= 0
        i = int(np.flatnonzero(ok_pair)[np.argmin(G[ok_pair, col["memory"]])])
        e = ev.est
        return UserError(f"no plan fits in memory: the smallest need is "
                         f"{e['train_mem_gb_per_device'][i]:.1f} GB per device ({label(sp, X, i)}, which offers "
                         f"{e['usable_gb_per_device'][i]:.1f} GB usable) (allowed: a larger-memory catalog, "
                         f"smaller models, planner.lora_ranks=[8], or more planner.gpus)")
    soft = list(SOFT)
    S = np.maximum(G[:, [col[c] for c in soft]], 0.0)  # relative violations (accuracy: absolute)
    S[:, soft.index("accuracy")] /= max(sp.limits.min_accuracy, 0.01)
    H = np.flatnonzero(hard_ok)
    best: tuple[float, str, float] | None = None
    for j, c in enumerate(soft):
        others = np.delete(S[H], j, axis=1).max(axis=1) <= 0
        if not others.any():
            continue
        need = S[H[others], j].min()
        if best is None or need < best[0]:
            key, est_name, fmt, looser = SOFT[c]
            vals = ev.est[est_name][H[others]]
            value = vals.min() if looser else vals.max()
            best = (need, c, float(value))
    closest = H[np.argsort(S[H].sum(axis=1), kind="stable")[:3]]
    if best is not None:
        _, c, value = best
        key, _, fmt, looser = SOFT[c]
        binding = f"{key}={_limit(sp, c):g} (the best plan meeting every other limit needs {key}" \
                  f"{'>=' if looser else '<='}{value:.4g})"
    else:
        worst = int(np.argmax(S[closest[0]]))
        c = soft[worst]
        binding = f"{SOFT[c][0]}={_limit(sp, c):g} (no single limit relaxed admits a plan)"
    parts = []
    for i in closest:
        viol = [f"{SOFT[c][2].format(ev.est[SOFT[c][1]][i])}" for j, c in enumerate(soft) if S[i, j] > 0]
        parts.append(f"{label(sp, X, i)}: {', '.join(viol)}")
    return UserError(f"no plan meets the constraints; binding: {binding}; closest: {'; '.join(parts)}")
