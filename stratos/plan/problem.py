r"""The planning problem as arrays: decision variables -> objectives and constraints.

A candidate is one index per variable (pymoo style, a row of the population matrix X):

  server  teacher  student  strategy  lora  quant  batch  gpus  share

(lora / quant / batch / gpus / share index the `Knobs` lists; with one value each they are constant).
`evaluate(space, X)` returns, for N candidates at once,

  F (N, 4)  minimised: [-accuracy, latency_ms_per_token, train_hours, cost_usd]
  G (N, 8)  violations, feasible iff all <= 0 (pymoo's convention), in `CONSTRAINTS` order
  est       every estimate by name, (N,) arrays

Exact enumeration (`enumerate_all`) and NSGA-II/III (`stratos.plan.search`) call this same
function. Everything that does not depend on the server (accuracy, FLOPs, memory terms) is
computed once on the small teacher x student x strategy x knob grid and gathered per
candidate; only the server-dependent arithmetic runs at full length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stratos.plan import estimators as E
from stratos.plan import memory as M
from stratos.plan.calibration import Calibration
from stratos.plan.cost import Cloud
from stratos.plan.preflight import PairTable
from stratos.plan.runnable import Runnable
from stratos.plan.zoo import Zoo

VARS = ("server", "teacher", "student", "strategy", "lora", "quant", "batch", "gpus", "share")
OBJECTIVES = ("accuracy", "latency_ms_per_token", "train_hours", "cost_usd")  # F = [-acc, lat, h, $]
CONSTRAINTS = ("pairing", "memory", "gpus", "budget", "deadline", "latency", "accuracy", "qps")
MAX_CONCURRENCY = 256  # serving engines cap the decode batch


@dataclass
class Knobs:
    """Extra decision variables. lora -1 = each student's own peft setting; gpus 0 = the whole node."""

    lora_ranks: list[int] = field(default_factory=lambda: [-1])
    quant_bits: list[int] = field(default_factory=lambda: [16])
    micro_batch: list[int] = field(default_factory=lambda: [8])
    gpus: list[int] = field(default_factory=lambda: [0])
    # share of the training budget spent (the tokens that fit before the deadline, at most work.tokens):
    # training shorter costs less and loses accuracy, a trade-off the plan can weigh
    train_shares: list[float] = field(default_factory=lambda: [1.0])


@dataclass
class Workload:
    task: str
    tokens: float  # training tokens D
    seq_len: int = 512
    prompt_tokens: int = 128
    output_tokens: int = 256
    data_epochs: float = 3.0
    rejection_samples: float = 2.0
    qps: float = 1.0
    # True: a candidate that cannot train all `tokens` before the deadline trains what fits (and its
    # predicted accuracy pays for the shortfall); False: `tokens` is fixed and the deadline a hard limit
    fit_deadline: bool = False


@dataclass
class Limits:
    budget_usd: float = float("inf")
    deadline_h: float = float("inf")
    latency_slo_ms: float = float("inf")
    min_accuracy: float = 0.0


@dataclass
class Space:
    cloud: Cloud
    zoo: Zoo
    strategies: list[str]
    pairs: PairTable
    work: Workload
    limits: Limits = field(default_factory=Limits)
    knobs: Knobs = field(default_factory=Knobs)
    calibration: Calibration = field(default_factory=Calibration)
    runnable: Runnable | None = None  # None: not checked (every candidate counts as runnable)

    def __post_init__(self) -> None:
        self._grid = _grid(self)

    @property
    def shape(self) -> tuple[int, ...]:
        k = self.knobs
        return (len(self.cloud), len(self.zoo.teachers), len(self.zoo.students), len(self.strategies),
                len(k.lora_ranks), len(k.quant_bits), len(k.micro_batch), len(k.gpus), len(k.train_shares))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def enumerate_all(self) -> dict[str, np.ndarray]:
        """Every candidate, as index arrays (C order over `shape`)."""
        flat = np.arange(self.size, dtype=np.int64)
        return dict(zip(VARS, (a.astype(np.int64) for a in np.unravel_index(flat, self.shape))))


def _grid(sp: Space) -> dict[str, np.ndarray]:
    """Server-independent quantities on the (T, U, K, L, Q, B, W) grid, W = weight bytes {2 (GPU), 4 (CPU)}."""
    z, p, w, k = sp.zoo, sp.pairs, sp.work, sp.knobs
    t_kind = z.column("teacher", "kind", object)
    nt = z.column("teacher", "params")
    nt_local = np.where(t_kind == "hf", nt, 0.0)  # engines and APIs use no accelerator time here
    ns, ls, hs = z.column("student", "params"), z.column("student", "layers"), z.column("student", "hidden")
    dkv_s = np.array([s.kv_dim for s in z.students], dtype=float)
    dkv_t = np.array([t.kv_dim for t in z.teachers], dtype=float)
    vs, vt, lt = z.column("student", "vocab"), z.column("teacher", "vocab"), z.column("teacher", "layers")
    targets = z.column("student", "lora_targets")
    own_rank = z.column("student", "lora_rank")
    knob = np.array(k.lora_ranks, dtype=float)
    rank = np.where(knob[None, :] < 0, own_rank[:, None], knob[None, :])  # (U, L)
    bits = np.array(k.quant_bits, dtype=float)
    batch = np.array(k.micro_batch, dtype=float)
    wb = np.array([2.0, 4.0])
    mode = p.mode  # (T, U, K) str
    logit = mode == "logit"
    factor = E.teacher_token_factor(mode, w.data_epochs, w.rejection_samples)  # (T, U, K)
    T_, U_, K_ = mode.shape
    bias = np.array([sp.calibration.accuracy_bias(w.task, s) for s in sp.strategies])
    acc_args = (mode[..., None, None], p.student_acc[None, :, None, None, None], p.teacher_acc[:, None, None, None, None],
                ns[None, :, None, None, None], nt[:, None, None, None, None], rank[None, :, None, :, None],
                bits[None, None, None, None, :])
    b = bias[None, None, :, None, None]
    # accuracy = clip(base + gain * sufficiency): the sufficiency depends on the server (how many tokens
    # fit before the deadline), so it is applied per candidate
    base_raw, gain = E.accuracy_parts(*acc_args)  # unclipped, broadcast to (T, U, K, L, Q)
    full = np.broadcast_shapes(np.shape(base_raw), np.shape(gain), np.shape(b), (T_, U_, K_, len(knob), len(bits)))
    base_raw, gain = np.broadcast_to(base_raw, full), np.broadcast_to(gain, full)
    g = {
        "accuracy_base_raw": base_raw, "accuracy_base": base_raw + b, "accuracy_gain": gain,
        "from_config": z.column("student", "from_config", bool),
        "rank": np.broadcast_to(rank[None, :, None, :], (T_, U_, K_, len(knob))),
        "flops": E.train_flops(ns[None, :, None, None], nt_local[:, None, None, None], w.tokens,
                               w.tokens * factor[..., None], rank[None, :, None, :]),  # (T, U, K, L)
        "api_tokens": np.where((t_kind == "openai")[:, None, None], w.tokens * factor, 0.0),  # (T, U, K)
        "logit": logit,
        # (U, L, W): student weights + grads + optimizer
        "student_state": M.student_train_bytes(ns[:, None, None], ls[:, None, None], hs[:, None, None],
                                               dkv_s[:, None, None], rank[:, :, None], wb[None, None, :],
                                               targets[:, None, None]),
        # (T, U, K, B, W)
        "activations": M.activation_bytes(batch[None, None, None, :, None], w.seq_len, hs[None, :, None, None, None],
                                          ls[None, :, None, None, None], vs[None, :, None, None, None],
                                          vt[:, None, None, None, None], logit[..., None, None], wb),
        "teacher_weights": nt_local[:, None] * wb[None, :],  # (T, W)
        "teacher_gen": M.teacher_gen_bytes(nt_local[:, None, None], lt[:, None, None], dkv_t[:, None, None],
                                           w.seq_len, batch[None, :, None], wb[None, None, :]),  # (T, B, W)
        "ns": ns, "ls": ls, "dkv_s": dkv_s, "bits": bits, "batch": batch,
    }
    c = sp.cloud.servers
    cpu = c.is_cpu
    # (S, U): MFU per device, refined per student where runs of that student were measured
    pairs, inverse = np.unique(np.stack([c.gpu.astype(str), c.mfu.astype(str)], axis=1), axis=0, return_inverse=True)
    per_pair = np.array([[sp.calibration.mfu(d, float(m), st.name) for st in z.students] for d, m in pairs])
    g["server_mfu"] = per_pair[inverse.reshape(-1)]
    g["server_lat_factor"] = np.array([sp.calibration.latency_factor(d) for d in c.gpu])
    g["server_link"] = E.link_efficiency(c.interconnect)
    g["server_usable"] = M.usable_bytes_per_device(c.gpu_mem_gb, cpu)
    return g


@dataclass
class Evaluation:
    F: np.ndarray  # (N, 4)
    G: np.ndarray  # (N, 8)
    est: dict[str, np.ndarray]

    @property
    def feasible(self) -> np.ndarray:
        return (self.G <= 0).all(axis=1)


def evaluate(sp: Space, X: dict[str, np.ndarray]) -> Evaluation:
    """Objectives, constraint violations and all estimates for candidates X (index arrays, length N)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _evaluate(sp, X)


def _evaluate(sp: Space, X: dict[str, np.ndarray]) -> Evaluation:
    g, w, lim, cl = sp._grid, sp.work, sp.limits, sp.cloud
    s, t, u, k = X["server"], X["teacher"], X["student"], X["strategy"]
    li, qi, bi, gi = X["lora"], X["quant"], X["batch"], X["gpus"]
    train_share = np.array(sp.knobs.train_shares, dtype=float)[X["share"]]
    srv = cl.servers
    cpu = srv.is_cpu[s]
    wi = cpu.astype(np.int64)  # index into W = {2, 4} bytes
    wb = np.where(cpu, 4.0, 2.0)
    count = srv.gpu_count[s]
    want = np.array(sp.knobs.gpus, dtype=np.int64)[gi]
    n = np.where(want > 0, want, count).astype(float)
    peak, bw, link = srv.tflops[s], srv.mem_bw_gbs[s], g["server_link"][s]
    usable = g["server_usable"][s]
    share = n / count  # share of the node billed
    mb = g["batch"][bi]

    # ---- training: tokens, time, cost, memory
    flops = g["flops"][t, u, k, li]
    mfu_ref = g["server_mfu"][s, u]
    achieved = E.achieved_flops(n, peak, mfu_ref, mb, link)
    hours_all = E.train_hours(flops, achieved, cl.time_factor[s])  # all of w.tokens
    startup_h = srv.startup_s[s] / 3600.0
    share_trained = np.ones_like(hours_all)
    if w.fit_deadline and np.isfinite(lim.deadline_h):
        share_trained = np.clip((lim.deadline_h - startup_h) / hours_all, 0.0, 1.0)
    share_trained = share_trained * train_share
    tokens = w.tokens * share_trained
    flops = flops * share_trained
    hours = hours_all * share_trained + startup_h
    api_tokens = g["api_tokens"][t, u, k] * share_trained
    price = cl.price_hour[s] * share
    cost = E.cost_usd(hours, price, api_tokens, cl.api_usd_per_mtok)
    train_dev = M.train_bytes_per_device(g["student_state"][u, li, wi], g["activations"][t, u, k, bi, wi],
                                         g["teacher_weights"][t, wi], g["teacher_gen"][t, bi, wi],
                                         g["logit"][t, u, k], n)

    # ---- serving the student: tensor-parallel over the fewest GPUs that hold it, replicas on the rest
    ns, ls, dkv = g["ns"][u], g["ls"][u], g["dkv_s"][u]
    weights = ns * g["bits"][qi] / 8.0
    kv_tok = M.kv_bytes_per_token(ls, dkv, wb)
    kv_full = kv_tok * (w.prompt_tokens + w.output_tokens)
    kv_mean = kv_tok * (w.prompt_tokens + w.output_tokens / 2.0)
    tp_need = 2.0 ** np.ceil(np.log2(np.maximum(1.0, (weights + kv_full) / np.maximum(usable, 1.0))))
    tp = np.minimum(tp_need, n)
    replicas = np.maximum(1.0, np.floor(n / tp))
    bw_eff = np.where(cpu, E.PRIORS["bw_eff"]["cpu"], E.PRIORS["bw_eff"]["gpu"])
    mu = np.where(cpu, E.PRIORS["prefill_mfu"]["cpu"], E.PRIORS["prefill_mfu"]["gpu"])
    ovh = np.where(cpu, E.PRIORS["step_overhead_ms_per_layer"]["cpu"], E.PRIORS["step_overhead_ms_per_layer"]["gpu"])
    ovh0 = np.where(cpu, E.PRIORS["step_overhead_ms"]["cpu"], E.PRIORS["step_overhead_ms"]["gpu"])

    def step(conc):
        return E.decode_step_ms(weights, conc * kv_mean, 2.0 * ns * conc, tp, bw, bw_eff, peak, mu, ls, ovh, link,
                                ovh0)

    pre = E.prefill_ms(ns, w.prompt_tokens, weights, tp, peak, mu, bw, bw_eff)
    e2e_single_s = (pre + w.output_tokens * step(1.0)) / 1e3
    conc = np.maximum(1.0, np.ceil(w.qps * e2e_single_s / replicas))
    phi = g["server_lat_factor"][s]
    step_c = step(conc)
    lat_raw = E.latency_ms_per_token(step_c, pre, srv.rtt_ms[s], w.output_tokens)
    lat = E.latency_ms_per_token(step_c * phi, pre * phi, srv.rtt_ms[s], w.output_tokens)
    c_max = np.clip(np.floor((usable * tp - weights) / kv_full), 1.0, MAX_CONCURRENCY)
    thr = E.throughput_tok_s(replicas, c_max, step(c_max) * phi)
    qps_cap = thr / w.output_tokens
    serve_need = weights + conc * kv_full

    suff = E.data_sufficiency(tokens, ns, g["from_config"][u])
    gain = g["accuracy_gain"][t, u, k, li, qi] * suff
    acc = np.clip(g["accuracy_base"][t, u, k, li, qi] + gain, 0.0, 1.0)
    acc_raw = np.clip(g["accuracy_base_raw"][t, u, k, li, qi] + gain, 0.0, 1.0)
    G = np.stack([
        (~sp.pairs.ok[t, u, k]).astype(float),
        np.maximum(train_dev / usable, serve_need / (usable * tp)) - 1.0,
        want / count - 1.0,
        cost / lim.budget_usd - 1.0,
        hours / lim.deadline_h - 1.0,
        lat / lim.latency_slo_ms - 1.0,
        lim.min_accuracy - acc,
        w.qps / qps_cap - 1.0,
    ], axis=1)
    F = np.stack([-acc, lat, hours, cost], axis=1)
    est = {
        "accuracy": acc, "accuracy_raw": acc_raw, "train_tokens": tokens,
        "token_sufficiency": suff, "startup_hours": np.broadcast_to(startup_h, acc.shape),
        "latency_ms_per_token": lat, "latency_ms_per_token_raw": lat_raw, "train_hours": hours, "cost_usd": cost,
        "ttft_ms": pre * phi + srv.rtt_ms[s], "decode_ms_per_token": step_c * phi, "rtt_ms": srv.rtt_ms[s],
        "ttft_ms_raw": pre + srv.rtt_ms[s], "decode_ms_per_token_raw": step_c,
        "throughput_tok_s": thr, "qps_capacity": qps_cap, "concurrency": conc,
        "train_mem_gb_per_device": train_dev / 1e9, "serve_mem_gb": serve_need / 1e9, "usable_gb_per_device": usable / 1e9,
        "n_gpus": n, "tensor_parallel": tp, "replicas": replicas, "flops": flops, "mfu_ref": mfu_ref,
        "price_hour": price, "api_usd": api_tokens / 1e6 * cl.api_usd_per_mtok,
        "lora_rank": g["rank"][t, u, k, li], "quant_bits": g["bits"][qi], "micro_batch": mb,
        "train_share": train_share,
    }
    return Evaluation(F=F, G=G, est=est)
