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
from omegaconf import DictConfig, OmegaConf

from stratos.errors import UserError, bad_value
from stratos.plan import runnable as R
from stratos.plan import select as SEL
from stratos.plan.calibration import Calibration
from stratos.plan.cost import Cloud, cloud_from_cfg, subset_cloud
from stratos.plan.catalog import table_from_rows
from stratos.plan.front import pareto_front
from stratos.plan.infeasible import diagnose, label
from stratos.plan.preflight import STRATEGIES, excluded_list, preflight
from stratos.plan.problem import CONSTRAINTS, Knobs, Limits, Space, Workload, evaluate
from stratos.plan.search import nsga
from stratos.plan.zoo import Zoo, build_zoo

SEARCHES = ("auto", "enumerate", "nsga2", "nsga3")
ROUND = 6
DEFAULT_EXAMPLE_TOKENS = 128.0


@dataclass
class PlanResult:
    json: dict[str, Any]
    F_feasible: np.ndarray  # (n, 4) objectives of feasible candidates (for the plot)
    F_front: np.ndarray  # (p, 4)
    chosen: np.ndarray  # (4,)
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _knobs(pc: DictConfig, batches: list[int]) -> Knobs:
    lora = [int(r) for r in pc.lora_ranks] or [-1]
    if any(r < 0 for r in pc.lora_ranks):
        raise bad_value("planner.lora_ranks", list(pc.lora_ranks), "ranks >= 0 (0 = full fine-tuning)")
    bits = [int(b) for b in pc.quant_bits]
    if not bits or any(b not in (4, 8, 16, 32) for b in bits):
        raise bad_value("planner.quant_bits", list(pc.quant_bits), "a non-empty list from 4, 8, 16, 32")
    mb = [int(b) for b in batches]
    if not mb or any(b < 1 for b in mb):
        raise bad_value("planner.micro_batch", list(pc.micro_batch), "a non-empty list of integers >= 1")
    gpus = [int(g) for g in pc.gpus] or [0]
    if any(g < 0 for g in gpus):
        raise bad_value("planner.gpus", list(pc.gpus), "integers >= 1 (empty = the whole node)")
    shares = [float(x) for x in pc.train_shares]
    if not shares or any(not 0.0 < x <= 1.0 for x in shares):
        raise bad_value("planner.train_shares", list(pc.train_shares), "a non-empty list of shares in (0, 1]")
    return Knobs(lora_ranks=lora, quant_bits=bits, micro_batch=mb, gpus=gpus, train_shares=shares)


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


def pinned(cfg: DictConfig) -> frozenset[str]:
    """The decisions the user fixed (`planner.pinned`, filled by the CLI): the plan searches the rest."""
    return frozenset(str(p) for p in (OmegaConf.select(cfg, "planner.pinned", default=None) or []))


def example_tokens(cfg: DictConfig, calibration: Calibration, student: str) -> float:
    """Training tokens per example for this task and student: measured when a run was, else the prior."""
    task = str(cfg.task.name)
    prior = float((cfg.planner.example_tokens or {}).get(task, DEFAULT_EXAMPLE_TOKENS))
    return calibration.tokens_per_example(task, student, prior)


def build_space(cfg: DictConfig, cloud: Cloud | None = None, zoo: Zoo | None = None,
                check_runnable: bool = True) -> Space:
    """The candidate space the config describes (catalog and zoo may be passed in, e.g. by benchmarks).

    Pins narrow it: a pinned teacher, student, strategy or server is the only one searched, and pinned
    `trainer.max_steps` fixes the training tokens (the deadline is then a hard limit)."""
    _check(cfg)
    if cfg.get("task") is None:
        raise UserError("no task selected: add +task=<name> (the planner predicts accuracy per task)")
    pc, d = cfg.planner, cfg.constraints
    pins = pinned(cfg)
    cloud = cloud if cloud is not None else cloud_from_cfg(cfg.servers, seed=int(pc.seed))
    if "server" in pins:
        keep = cloud.servers.name == str(cfg.servers.run_server)
        if not keep.any():
            raise bad_value("servers.run_server", cfg.servers.run_server,
                            f"a server of the catalog (e.g. {', '.join(cloud.servers.name[:3])}, ...)")
        cloud = subset_cloud(cloud, keep)
    zoo = zoo if zoo is not None else build_zoo(cfg, pins)
    strategies = list(pc.strategies)
    if "strategy" in pins and str(cfg.strategy.name) in STRATEGIES:
        strategies = [str(cfg.strategy.name)]
    calibration = Calibration.load(pc.history)
    tokens, fit = float(pc.train_tokens), bool(pc.train_to_deadline)
    if "trainer.max_steps" in pins:  # the user fixed the steps: the plan trains exactly those tokens
        per_example = example_tokens(cfg, calibration, str(cfg.student.name))
        tokens, fit = float(cfg.trainer.max_steps) * float(cfg.trainer.batch_size) * per_example, False
    batches = list(pc.micro_batch)
    work = Workload(task=str(cfg.task.name), tokens=tokens, seq_len=int(pc.seq_len),
                    prompt_tokens=int(pc.prompt_tokens), output_tokens=int(pc.output_tokens),
                    data_epochs=float(pc.data_epochs), rejection_samples=float(pc.rejection_samples), qps=float(d.qps),
                    fit_deadline=fit)
    limits = Limits(budget_usd=float(d.budget_usd), deadline_h=float(d.deadline_h),
                    latency_slo_ms=float(d.latency_slo_ms), min_accuracy=float(d.min_accuracy))
    pairs = preflight(zoo, strategies, work.task, work.seq_len)
    runnable = None
    if check_runnable:
        runnable = R.check(cloud.servers, [(m.config, m.unset) for m in zoo.teachers],
                           [(m.config, m.unset) for m in zoo.students])
    return Space(cloud=cloud, zoo=zoo, strategies=strategies, pairs=pairs, work=work, limits=limits,
                 knobs=_knobs(pc, batches), calibration=calibration, runnable=runnable)


def _r(x: Any) -> Any:
    x = float(x)
    return round(x, ROUND) if abs(x) >= 1e-3 or x == 0 else float(f"{x:.4g}")


def point(sp: Space, X: dict[str, np.ndarray], est: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """One candidate as JSON: names, knobs and every estimate."""
    s, t, u, k = (int(X[v][i]) for v in ("server", "teacher", "student", "strategy"))
    srv = sp.cloud.servers
    return {
        "server": srv.name[s], "provider": srv.provider[s], "region": srv.region[s], "launcher": srv.launcher[s],
        "partition": srv.partition[s] or None,
        "gpu": f"{srv.gpu[s]}x{int(est['n_gpus'][i])}", "teacher": sp.zoo.teachers[t].name,
        "student": sp.zoo.students[u].name, "strategy": sp.strategies[k], "mode": sp.pairs.mode[t, u, k],
        "lora_rank": int(est["lora_rank"][i]), "quant_bits": int(est["quant_bits"][i]),
        "micro_batch": int(est["micro_batch"][i]), "train_share": float(est["train_share"][i]),
        "estimates": {name: _r(v[i]) for name, v in est.items()
                      if name not in ("lora_rank", "quant_bits", "micro_batch", "train_share")},
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


def executes_selected(cfg: DictConfig, selected: dict) -> bool:
    """Whether this config is the selected plan applied (stratos/plan/execute.py): then the run's
    estimate is the selected plan's own, not a second computation."""
    return (bool(cfg.planner.execute) and str(cfg.servers.run_server) == selected["server"]
            and str(cfg.teacher.name) == selected["teacher"] and str(cfg.student.name) == selected["student"]
            and str(cfg.strategy.name) == selected["strategy"])


def run_estimate(cfg: DictConfig, sp: Space, selected: dict | None = None) -> dict[str, Any] | None:
    """Estimates for the run this config makes, for the ledger: the selected plan's own when the
    config executes it; else the configured teacher/student/strategy on servers.run_server."""
    if selected is not None and executes_selected(cfg, selected):
        e = selected["estimates"]
        return {"server": selected["server"], "device": selected["gpu"].rsplit("x", 1)[0],
                "teacher": selected["teacher"], "student": selected["student"], "strategy": selected["strategy"],
                "tokens": e["train_tokens"], "tokens_formula": "the selected plan's train_tokens",
                "source": "selected", "estimates": {selected["strategy"]: {**e, "mode": selected["mode"]}}}
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
    tokens = float(steps * batch * example_tokens(cfg, sp.calibration, str(cfg.student.name)))
    work = Workload(**{**sp.work.__dict__, "tokens": tokens, "fit_deadline": False})
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
            "tokens_formula": "trainer.max_steps * trainer.batch_size * tokens per example", "source": "config",
            "estimates": ests}


TIE = 1e-9  # score bonus per part matching the composed config: among equals, keep what the user composed


def _as_composed(cfg: DictConfig, sp: Space, X: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """(len(idx),) how many of server, teacher, student, strategy equal the composed config's."""
    names = {"server": (sp.cloud.servers.name, str(cfg.servers.run_server)),
             "teacher": (np.array([m.name for m in sp.zoo.teachers], dtype=object), str(cfg.teacher.name)),
             "student": (np.array([m.name for m in sp.zoo.students], dtype=object), str(cfg.student.name)),
             "strategy": (np.array(sp.strategies, dtype=object), str(cfg.strategy.name))}
    return sum((col[X[v][idx]] == want).astype(float) for v, (col, want) in names.items())


def _best(F: np.ndarray, idx: np.ndarray, weights: np.ndarray, pc: DictConfig, bonus: np.ndarray) -> int:
    """The candidate the selection rule picks among `idx` (feasible); `bonus` breaks exact ties."""
    front = idx[pareto_front(F[idx])]
    scores = SEL.deployment_score(F[front], F[front], weights, bool(pc.log_scale)) + TIE * bonus[front]
    pick = SEL.knee(F[front], bool(pc.log_scale)) if pc.selection == "knee" else int(np.argmax(scores))
    return int(front[pick])


def _describe(sp: Space, X: dict[str, np.ndarray], i: int) -> str:
    s, t, u, k = (int(X[v][i]) for v in ("server", "teacher", "student", "strategy"))
    return (f"{sp.zoo.teachers[t].name} -> {sp.zoo.students[u].name} ({sp.strategies[k]}) on "
            f"{sp.cloud.servers.name[s]}")


def _nothing_runnable(sp: Space, X: dict[str, np.ndarray], ev, run_ok: np.ndarray, best: int) -> UserError:
    """One line: why no runnable candidate is feasible, and what the best plan overall would take."""
    needs = "; ".join(sp.runnable.needs(int(X["server"][best]), int(X["teacher"][best]), int(X["student"][best])))
    tail = f"the best plan overall, {_describe(sp, X, best)}, is not runnable here: {needs}"
    if not run_ok.any():
        return UserError(f"no runnable candidate (no server, teacher and student that can all run from here); {tail}")
    sub = {k: v[run_ok] for k, v in X.items()}
    why = str(diagnose(sp, sub, evaluate(sp, sub))).rstrip(".")
    return UserError(f"no runnable plan meets the constraints: {why}; {tail}")


def _runnable_summary(sp: Space, X: dict[str, np.ndarray], run_ok: np.ndarray, feasible: np.ndarray) -> dict:
    if sp.runnable is None:
        return {"checked": False}
    r = sp.runnable

    def part(names, ok, why):
        return [{"name": str(n), "runnable": bool(o), "why": w} for n, o, w in zip(names, ok, why)]

    return {"checked": True, "candidates": int(run_ok.sum()), "feasible": int((run_ok & feasible).sum()),
            "servers": [p for p in part(sp.cloud.servers.name, r.server, r.server_why)
                        if p["runnable"] or sp.cloud.servers.launcher[sp.cloud.servers.index(p["name"])] != "cloud"],
            "cloud_servers_not_runnable": int(((sp.cloud.servers.launcher == "cloud") & ~r.server).sum()),
            "cloud_reason": next((w for w, o, l in zip(r.server_why, r.server, sp.cloud.servers.launcher)
                                  if l == "cloud" and not o), None),
            "teachers": part([m.name for m in sp.zoo.teachers], r.teacher, r.teacher_why),
            "students": part([m.name for m in sp.zoo.students], r.student, r.student_why)}


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
    feas_all = np.flatnonzero(ev.feasible)
    if len(feas_all) == 0:
        raise diagnose(sp, X, ev)
    run_ok = sp.runnable.mask(X) if sp.runnable is not None else np.ones(len(ev.F), dtype=bool)
    bonus = np.zeros(len(ev.F))
    bonus[feas_all] = _as_composed(cfg, sp, X, feas_all)
    best_overall = _best(ev.F, feas_all, weights, pc, bonus)
    feas = feas_all  # advice (planner.execute=false): the best plan whether or not it can run from here
    if bool(pc.execute):  # the plan runs: only what can run from here
        feas = np.flatnonzero(ev.feasible & run_ok)
        if len(feas) == 0:
            raise _nothing_runnable(sp, X, ev, run_ok, best_overall)
    front = feas[pareto_front(ev.F[feas])]
    t2 = time.perf_counter()
    F_front = ev.F[front]
    scores = SEL.deployment_score(F_front, F_front, weights, bool(pc.log_scale))
    pick = (SEL.knee(F_front, bool(pc.log_scale)) if pc.selection == "knee"
            else int(np.argmax(scores + TIE * bonus[front])))
    chosen = int(front[pick])
    base_idx = SEL.baselines(ev.F, feas, prefer=bonus)
    base = {}
    for name, i in base_idx.items():
        b = point(sp, X, ev.est, i)
        b["score"] = _r(SEL.deployment_score(ev.F[i:i + 1], F_front, weights, bool(pc.log_scale))[0])
        base[name] = b
    selected = point(sp, X, ev.est, chosen)
    selected["score"] = _r(scores[pick])
    overall = point(sp, X, ev.est, best_overall)
    overall["score"] = _r(SEL.deployment_score(ev.F[best_overall:best_overall + 1], F_front, weights,
                                               bool(pc.log_scale))[0])
    improvement = {k: (None if (v := SEL.improvement_pct(selected["score"], b["score"])) is None else round(v, 2))
                   for k, b in base.items()}
    order = np.argsort(-scores, kind="stable")[: int(pc.front_max)]
    front_pts = []
    for j in order:
        p = point(sp, X, ev.est, int(front[j]))
        p["score"] = _r(scores[j])
        front_pts.append(p)
    if sp.runnable is not None:
        for p, i in [(selected, chosen), (overall, best_overall), *[(b, base_idx[k]) for k, b in base.items()],
                     *zip(front_pts, (int(front[j]) for j in order))]:
            p["needs"] = sp.runnable.needs(int(X["server"][i]), int(X["teacher"][i]), int(X["student"][i]))
            p["runnable"] = not p["needs"]
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
        "best_overall": overall, "pinned": sorted(pinned(cfg)),
        "runnable": _runnable_summary(sp, X, run_ok, ev.feasible),
        "constraints": {"budget_usd": float(d.budget_usd), "deadline_h": float(d.deadline_h),
                        "latency_slo_ms": float(d.latency_slo_ms), "min_accuracy": float(d.min_accuracy),
                        "qps": float(d.qps), "region_allowlist": list(cfg.servers.region_allowlist),
                        "min_availability": float(cfg.servers.min_availability), "pricing": sp.cloud.pricing,
                        "servers_dropped": sp.cloud.dropped,
                        "tight_at_selected": [c for c, g in zip(CONSTRAINTS, G_sel)
                                              if c not in ("pairing", "gpus") and -0.05 < g <= 0]},
        "calibration": {"history": pc.history, **sp.calibration.summary()},
        "run": run_estimate(cfg, sp, selected),
    }
    t3 = time.perf_counter()
    return PlanResult(json=out, F_feasible=ev.F[feas], F_front=F_front, chosen=ev.F[chosen],
                      baselines={k: ev.F[i] for k, i in base_idx.items()},
                      seconds={"setup": t1 - t0, "search_and_front": t2 - t1, "select_and_report": t3 - t2})
