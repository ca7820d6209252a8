"""Plan: from the composed config to the chosen deployment, its front and its baselines.

    result = plan(cfg)              # PlanResult
    result.json                     # what the plan stage writes as plan.json

Steps: the catalog (`cloud`), the zoo (`conf/teacher`, `conf/student`), the calibration history,
pairing preflight, the candidate space; exact enumeration (or NSGA when the knobs make it too
large); the non-dominated set of the feasible candidates; the deployment score (or knee) to pick
one; the three baselines; and an estimate for the run the pipeline itself is about to do on
`servers.run_server`, which the ledger later puts next to the measurements.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig

from stratos.errors import UserError, bad_value
from stratos.plan import select as SEL
from stratos.plan.calibration import Calibration
from stratos.plan.cost import Cloud, cloud_from_cfg
from stratos.plan.catalog import table_from_rows
from stratos.plan.front import pareto_front
from stratos.plan.infeasible import diagnose, label
from stratos.plan.preflight import STRATEGIES, excluded_list, preflight
from stratos.plan.problem import CONSTRAINTS, Knobs, Limits, Space, Workload, evaluate
from stratos.plan.search import nsga
from stratos.plan.zoo import Zoo, build_zoo

SEARCHES = ("auto", "enumerate", "nsga2", "nsga3")
ROUND = 6


@dataclass
class PlanResult:
    json: dict[str, Any]
    F_feasible: np.ndarray  # (n, 4) objectives of feasible candidates (for the plot)
    F_front: np.ndarray  # (p, 4)
    chosen: np.ndarray  # (4,)
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _knobs(pc: DictConfig) -> Knobs:
    lora = [int(r) for r in pc.lora_ranks] or [-1]
    if any(r < 0 for r in pc.lora_ranks):
        raise bad_value("planner.lora_ranks", list(pc.lora_ranks), "ranks >= 0 (0 = full fine-tuning)")
    bits = [int(b) for b in pc.quant_bits]
    if not bits or any(b not in (4, 8, 16, 32) for b in bits):
        raise bad_value("planner.quant_bits", list(pc.quant_bits), "a non-empty list from 4, 8, 16, 32")
    mb = [int(b) for b in pc.micro_batch]
    if not mb or any(b < 1 for b in mb):
        raise bad_value("planner.micro_batch", list(pc.micro_batch), "a non-empty list of integers >= 1")
    gpus = [int(g) for g in pc.gpus] or [0]
    if any(g < 0 for g in gpus):
        raise bad_value("planner.gpus", list(pc.gpus), "integers >= 1 (empty = the whole node)")
    return Knobs(lora_ranks=lora, quant_bits=bits, micro_batch=mb, gpus=gpus)


def _check(cfg: DictConfig) -> None:
    pc = cfg.planner
    bad = [s for s in pc.strategies if s not in STRATEGIES]
    if bad or not pc.strategies:
        raise bad_value("planner.strategies", list(pc.strategies), f"a non-empty list from {', '.join(STRATEGIES)}")
    if pc.selection not in ("score", "knee"):
        raise bad_value("planner.selection", pc.selection, "score, knee")
    if pc.search not in SEARCHES:
        raise bad_value("planner.search", pc.search, ", ".join(SEARCHES))
    for key in ("train_tokens", "data_epochs", "rejection_samples"):
        if not float(pc[key]) > 0:
            raise bad_value(f"planner.{key}", pc[key], "a number > 0")
    for key in ("seq_len", "prompt_tokens", "output_tokens"):
        if not int(pc[key]) >= 1:
            raise bad_value(f"planner.{key}", pc[key], "an integer >= 1")
    c = cfg.constraints
    checks = [("budget_usd", float(c.budget_usd) > 0, "dollars > 0"), ("deadline_h", float(c.deadline_h) > 0, "hours > 0"),
              ("latency_slo_ms", float(c.latency_slo_ms) > 0, "milliseconds > 0"),
              ("min_accuracy", 0.0 <= float(c.min_accuracy) <= 1.0, "0 <= accuracy <= 1"),
              ("qps", float(c.qps) > 0, "requests per second > 0")]
    for key, ok, allowed in checks:
        if not ok:
            raise bad_value(f"constraints.{key}", c[key], allowed)


def validate_planner(cfg: DictConfig) -> None:
    """The planner's own groups (`planner`, `constraints`): the checks their types cannot express."""
    _check(cfg)


def build_space(cfg: DictConfig, cloud: Cloud | None = None, zoo: Zoo | None = None) -> Space:
    """The candidate space the config describes (catalog and zoo may be passed in, e.g. by benchmarks)."""
    _check(cfg)
    if cfg.get("task") is None:
        raise UserError("no task selected: add +task=<name> (the planner predicts accuracy per task)")
    pc, d = cfg.planner, cfg.constraints
    cloud = cloud if cloud is not None else cloud_from_cfg(cfg.servers, seed=int(pc.seed))
    zoo = zoo if zoo is not None else build_zoo(cfg)
    strategies = list(pc.strategies)
    work = Workload(task=str(cfg.task.name), tokens=float(pc.train_tokens), seq_len=int(pc.seq_len),
                    prompt_tokens=int(pc.prompt_tokens), output_tokens=int(pc.output_tokens),
                    data_epochs=float(pc.data_epochs), rejection_samples=float(pc.rejection_samples), qps=float(d.qps))
    limits = Limits(budget_usd=float(d.budget_usd), deadline_h=float(d.deadline_h),
                    latency_slo_ms=float(d.latency_slo_ms), min_accuracy=float(d.min_accuracy))
    pairs = preflight(zoo, strategies, work.task, work.seq_len)
    return Space(cloud=cloud, zoo=zoo, strategies=strategies, pairs=pairs, work=work, limits=limits,
                 knobs=_knobs(pc), calibration=Calibration.load(pc.history))


def _r(x: Any) -> Any:
    x = float(x)
    return round(x, ROUND) if abs(x) >= 1e-3 or x == 0 else float(f"{x:.4g}")


def point(sp: Space, X: dict[str, np.ndarray], est: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """One candidate as JSON: names, knobs and every estimate."""
    s, t, u, k = (int(X[v][i]) for v in ("server", "teacher", "student", "strategy"))
    srv = sp.cloud.servers
    return {
        "server": srv.name[s], "provider": srv.provider[s], "region": srv.region[s],
        "gpu": f"{srv.gpu[s]}x{int(est['n_gpus'][i])}", "teacher": sp.zoo.teachers[t].name,
        "student": sp.zoo.students[u].name, "strategy": sp.strategies[k], "mode": sp.pairs.mode[t, u, k],
        "lora_rank": int(est["lora_rank"][i]), "quant_bits": int(est["quant_bits"][i]),
        "micro_batch": int(est["micro_batch"][i]),
        "estimates": {name: _r(v[i]) for name, v in est.items()
                      if name not in ("lora_rank", "quant_bits", "micro_batch")},
        "notes": sp.pairs.notes.get((t, u, k), []),
    }


def _unfit_pairs(sp: Space, X: dict[str, np.ndarray], ev) -> list[dict]:
    """Triples that pass preflight but fit in memory on no server: excluded with the reason."""
    T, U, K = sp.pairs.ok.shape
    tri = (X["teacher"] * U + X["student"]) * K + X["strategy"]
    mem = ev.G[:, CONSTRAINTS.index("memory")]
    worst = np.full(T * U * K, np.inf)
    np.minimum.at(worst, tri, mem)
    grouped: dict[tuple[int, int], dict] = {}
    need = ev.est["train_mem_gb_per_device"]
    for f in np.flatnonzero((worst > 0) & sp.pairs.ok.ravel()):
        t, rest = divmod(int(f), U * K)
        u, k = divmod(rest, K)
        mine = tri == f
        best = int(np.flatnonzero(mine)[np.argmin(mem[mine])])
        g = grouped.setdefault((t, u), {"teacher": sp.zoo.teachers[t].name, "student": sp.zoo.students[u].name,
                                        "strategies": [], "reasons": []})
        g["strategies"].append(sp.strategies[k])
        g["reasons"].append(f"{sp.strategies[k]} fits no server: needs {need[best]:.1f} GB per device at best "
                            f"({sp.cloud.servers.name[X['server'][best]]} offers "
                            f"{ev.est['usable_gb_per_device'][best]:.1f} GB usable)")
    return list(grouped.values())


def run_estimate(cfg: DictConfig, sp: Space) -> dict[str, Any] | None:
    """Estimates for the configured teacher/student/strategy on servers.run_server, for the ledger."""
    row = sp.cloud.run_server
    name = str(cfg.strategy.name)
    if row is None or name not in ("auto", *STRATEGIES):
        return None
    strategies = ["alignment", "injection"] if name == "auto" else [name]
    from stratos.plan.zoo import entry_from_cfg

    zoo = Zoo([entry_from_cfg(cfg.teacher, "teacher")], [entry_from_cfg(cfg.student, "student")])
    table = table_from_rows([row], sp.cloud.user_region)
    cloud = Cloud(servers=table, price_hour=np.array([row["price_hour"]]), time_factor=np.ones(1),
                  availability=np.ones(1), user_region=sp.cloud.user_region,
                  api_usd_per_mtok=sp.cloud.api_usd_per_mtok, run_server=row)
    cpu = row["gpu"] == "cpu"
    bits = 8 if cfg.deploy.get("quantize_int8") else (32 if cpu else 16)
    batch, steps = int(cfg.trainer.batch_size), int(cfg.trainer.max_steps)
    tokens = float(steps * batch * sp.work.seq_len)
    work = Workload(**{**sp.work.__dict__, "tokens": tokens})
    pairs = preflight(zoo, strategies, work.task, work.seq_len)
    run_sp = Space(cloud=cloud, zoo=zoo, strategies=strategies, pairs=pairs, work=work,
                   knobs=Knobs(quant_bits=[bits], micro_batch=[batch]), calibration=sp.calibration)
    X = run_sp.enumerate_all()
    ev = evaluate(run_sp, X)
    ests = {}
    for i, strat in enumerate(strategies):
        p = point(run_sp, X, ev.est, i)
        ests[strat] = {**p["estimates"], "mode": p["mode"], "excluded": pairs.reasons.get((0, 0, i), [])}
    return {"server": row["name"], "device": row["gpu"], "teacher": zoo.teachers[0].name,
            "student": zoo.students[0].name, "strategy": name, "tokens": tokens,
            "tokens_formula": "trainer.max_steps * trainer.batch_size * planner.seq_len", "estimates": ests}


def plan(cfg: DictConfig, space: Space | None = None) -> PlanResult:
    t0 = time.perf_counter()
    sp = space if space is not None else build_space(cfg)
    pc = cfg.planner
    weights = SEL.check_weights(dict(pc.weights))
    t1 = time.perf_counter()
    method = pc.search
    if method == "auto":
        method = "enumerate" if sp.size <= int(pc.enumerate_limit) else "nsga2"
    if method == "enumerate":
        X = sp.enumerate_all()
    else:
        X = nsga(sp, method, int(pc.pop_size), int(pc.generations), seed=int(pc.seed))
        if len(X["server"]) == 0:  # the search met no feasible candidate: diagnose on a sample
            rng = np.random.default_rng(0)
            flat = rng.integers(0, sp.size, size=min(sp.size, 200_000))
            X = dict(zip(X, (a.astype(np.int64) for a in np.unravel_index(flat, sp.shape))))
    ev = evaluate(sp, X)
    feas = np.flatnonzero(ev.feasible)
    if len(feas) == 0:
        raise diagnose(sp, X, ev)
    front = feas[pareto_front(ev.F[feas])]
    t2 = time.perf_counter()
    F_front = ev.F[front]
    scores = SEL.deployment_score(F_front, F_front, weights, bool(pc.log_scale))
    pick = SEL.knee(F_front, bool(pc.log_scale)) if pc.selection == "knee" else int(np.argmax(scores))
    chosen = int(front[pick])
    base_idx = SEL.baselines(ev.F, feas)
    base = {}
    for name, i in base_idx.items():
        b = point(sp, X, ev.est, i)
        b["score"] = _r(SEL.deployment_score(ev.F[i:i + 1], F_front, weights, bool(pc.log_scale))[0])
        base[name] = b
    selected = point(sp, X, ev.est, chosen)
    selected["score"] = _r(scores[pick])
    improvement = {k: (None if (v := SEL.improvement_pct(selected["score"], b["score"])) is None else round(v, 2))
                   for k, b in base.items()}
    order = np.argsort(-scores, kind="stable")[: int(pc.front_max)]
    front_pts = []
    for j in order:
        p = point(sp, X, ev.est, int(front[j]))
        p["score"] = _r(scores[j])
        front_pts.append(p)
    G_sel = ev.G[chosen]
    d = cfg.constraints
    out = {
        "task": sp.work.task,
        "selected": selected,
        "selection": {"method": pc.selection, "weights": dict(zip(SEL.WEIGHT_KEYS, weights.tolist())),
                      "log_scale": bool(pc.log_scale)},
        "candidates": int(sp.size), "evaluated": int(len(X["server"])), "feasible": int(len(feas)),
        "pareto": int(len(front)), "front_truncated": bool(len(front) > len(front_pts)),
        "search": {"method": method, "space": int(sp.size)},
        "servers": int(len(sp.cloud)), "teachers": [m.name for m in sp.zoo.teachers],
        "students": [m.name for m in sp.zoo.students], "strategies": sp.strategies,
        "excluded": excluded_list(sp.zoo, sp.strategies, sp.pairs) + _unfit_pairs(sp, X, ev),
        "baselines": base, "improvement": improvement, "front": front_pts,
        "constraints": {"budget_usd": float(d.budget_usd), "deadline_h": float(d.deadline_h),
                        "latency_slo_ms": float(d.latency_slo_ms), "min_accuracy": float(d.min_accuracy),
                        "qps": float(d.qps), "region_allowlist": list(cfg.servers.region_allowlist),
                        "min_availability": float(cfg.servers.min_availability), "pricing": sp.cloud.pricing,
                        "servers_dropped": sp.cloud.dropped,
                        "tight_at_selected": [c for c, g in zip(CONSTRAINTS, G_sel)
                                              if c not in ("pairing", "gpus") and -0.05 < g <= 0]},
        "calibration": {"history": pc.history, **sp.calibration.summary()},
        "run": run_estimate(cfg, sp),
    }
    t3 = time.perf_counter()
    return PlanResult(json=out, F_feasible=ev.F[feas], F_front=F_front, chosen=ev.F[chosen],
                      baselines={k: ev.F[i] for k, i in base_idx.items()},
                      seconds={"setup": t1 - t0, "search_and_front": t2 - t1, "select_and_report": t3 - t2})
