"""Vectorised estimators == the scalar formulas in their docstrings, written out here with `math`.

The second half re-derives one whole candidate (time, cost, memory, latency, throughput,
accuracy) from scratch and compares it with `evaluate` on random candidates of a real space.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stratos.plan import estimators as E
from stratos.plan.planner import build_space
from stratos.plan.problem import CONSTRAINTS, Knobs, evaluate

P = E.PRIORS


def s_mfu(mfu_ref, b):
    return min(0.95, mfu_ref * (b / (b + 1.0)) / (8.0 / 9.0))


def s_accuracy(mode, a_s, a_t, n_s, n_t, rank, bits, bias=0.0, suff=1.0):
    eta = P["transfer"][mode]
    cap = math.sqrt(n_s) / (math.sqrt(n_s) + math.sqrt(5e6))
    if mode in ("logit", "sequence") and n_t > 0:
        gap = 1.0 / (1.0 + 0.15 * max(0.0, math.log10(n_t / n_s) - 2))
    else:
        gap = 1.0
    lam = 1.0 - 0.1 * math.exp(-rank / 16.0) if rank > 0 else 1.0
    target = {"injection": 0.6 + 0.4 * a_t, "labels": 1.0}.get(mode, a_t)
    pen = {16: 0.0, 8: 0.003, 4: 0.02}.get(bits, 0.0 if bits >= 16 else 0.05)
    return min(1.0, max(0.0, a_s + eta * cap * gap * lam * max(0.0, target - a_s) * suff - pen + bias))


def test_elementwise_functions_match_scalars():
    rng = np.random.default_rng(0)
    n = 200
    ns, nt = 10 ** rng.uniform(5, 10, n), 10 ** rng.uniform(8, 11, n)
    ranks = rng.choice([0, 4, 8, 64], n)
    modes = rng.choice(["logit", "sequence", "injection", "labels"], n)
    a_s, a_t = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    bits = rng.choice([4, 8, 16, 32], n)
    acc = E.predicted_accuracy(modes, a_s, a_t, ns, nt, ranks, bits, bias=0.02)
    ftok = E.teacher_token_factor(modes, 3.0, 2.0)
    flops = E.train_flops(ns, nt, 2e7, 2e7 * ftok, ranks)
    gpus, peak, b = rng.choice([1, 2, 4, 8], n), rng.uniform(50, 1000, n), rng.choice([1, 4, 8, 32], n)
    link = rng.choice([0.85, 0.95, 1.0], n)
    ach = E.achieved_flops(gpus, peak, 0.4, b, link)
    for i in range(n):
        assert acc[i] == pytest.approx(s_accuracy(modes[i], a_s[i], a_t[i], ns[i], nt[i], ranks[i], bits[i], 0.02))
        f = {"logit": 1.0, "sequence": 2.0 / 3.0, "injection": 1.0 / 3.0, "labels": 0.0}[modes[i]]
        k = 4.0 if ranks[i] > 0 else 6.0
        assert flops[i] == pytest.approx(k * ns[i] * 2e7 + 2 * nt[i] * 2e7 * f)
        assert ach[i] == pytest.approx(gpus[i] * peak[i] * 1e12 * s_mfu(0.4, b[i]) * link[i] ** math.log2(gpus[i]))
    assert E.cost_usd(2.0, 3.5, 4e6, 2.0) == pytest.approx(2 * 3.5 + 4 * 2.0)
    assert E.train_hours(3.6e15, 1e12, 1.25) == pytest.approx(1.25)
    assert E.size_prior(30e9) == pytest.approx(0.5)


def test_accuracy_orders_make_sense():
    # a larger student learns more; logit KD transfers more than sequence KD; a weak teacher favours injection
    assert E.predicted_accuracy("logit", 0.3, 0.9, 3e9, 7e9, 0, 16) > E.predicted_accuracy("logit", 0.3, 0.9, 5e8, 7e9, 0, 16)
    assert E.predicted_accuracy("logit", 0.3, 0.9, 1e9, 7e9, 0, 16) > E.predicted_accuracy("sequence", 0.3, 0.9, 1e9, 7e9, 0, 16)
    assert E.predicted_accuracy("injection", 0.1, 0.2, 1e9, 7e9, 0, 16) > E.predicted_accuracy("logit", 0.1, 0.2, 1e9, 7e9, 0, 16)
    assert E.predicted_accuracy("logit", 0.3, 0.9, 1e9, 7e9, 8, 16) < E.predicted_accuracy("logit", 0.3, 0.9, 1e9, 7e9, 0, 16)
    assert E.predicted_accuracy("logit", 0.3, 0.9, 1e9, 7e9, 0, 4) < E.predicted_accuracy("logit", 0.3, 0.9, 1e9, 7e9, 0, 8)
    assert E.predicted_accuracy("logit", 0.95, 0.9, 1e9, 7e9, 0, 16) == pytest.approx(0.95)  # never worse than itself


# ---------------------------------------------------------------- one candidate from scratch
def scalar_candidate(sp, X, i):
    """Everything `evaluate` reports for candidate i, in plain Python from the module docstrings."""
    s, t, u, k = (int(X[v][i]) for v in ("server", "teacher", "student", "strategy"))
    srv, T, S, w = sp.cloud.servers, sp.zoo.teachers[t], sp.zoo.students[u], sp.work
    cpu = srv.gpu[s] == "cpu"
    wb = 4.0 if cpu else 2.0
    count = int(srv.gpu_count[s])
    want = sp.knobs.gpus[int(X["gpus"][i])]
    n = want if want > 0 else count
    knob = sp.knobs.lora_ranks[int(X["lora"][i])]
    rank = S.lora_rank if knob < 0 else knob
    bits = sp.knobs.quant_bits[int(X["quant"][i])]
    b = sp.knobs.micro_batch[int(X["batch"][i])]
    mode = sp.pairs.mode[t, u, k]
    nt_local = T.params if T.kind == "hf" else 0.0
    f = {"logit": 1.0, "sequence": w.rejection_samples / w.data_epochs, "injection": 1.0 / w.data_epochs}.get(mode, 0.0)
    flops_all = (4.0 if rank > 0 else 6.0) * S.params * w.tokens + 2 * nt_local * w.tokens * f
    link = P["link_eff"].get(srv.interconnect[s], 0.8)
    mfu = sp.calibration.mfu(srv.gpu[s], float(srv.mfu[s]), S.name)
    achieved = n * srv.tflops[s] * 1e12 * s_mfu(mfu, b) * link ** math.log2(n)
    hours_all = flops_all / achieved * sp.cloud.time_factor[s] / 3600
    startup = srv.startup_s[s] / 3600
    trained = sp.knobs.train_shares[int(X["share"][i])]  # share of what fits before the deadline
    if w.fit_deadline and math.isfinite(sp.limits.deadline_h):
        trained *= min(1.0, max(0.0, (sp.limits.deadline_h - startup) / hours_all))
    tokens = w.tokens * trained
    hours = hours_all * trained + startup
    api = w.tokens * f * trained if T.kind == "openai" else 0.0
    half = P["scratch_tokens_per_param"] * S.params if S.from_config else P["finetune_tokens_half"]
    suff = tokens / (tokens + half)
    cost = hours * sp.cloud.price_hour[s] * n / count + api / 1e6 * sp.cloud.api_usd_per_mtok
    # training memory per device
    logit = mode == "logit"
    state = 16 * S.params if rank == 0 else wb * S.params + 16 * rank * S.layers * S.lora_targets * (
        S.hidden + (S.hidden + S.kv_dim) / 2)
    act = wb / 2 * b * w.seq_len * S.hidden * (2 * S.layers + 34) + 4 * b * w.seq_len * (
        2 * S.vocab + (T.vocab if logit else 0))
    tw = wb * nt_local
    tg = wb * nt_local + 2 * T.layers * T.kv_dim * wb * w.seq_len * b
    train_dev = (state + tw) / n + act if logit else max(state / n + act, tg / n)
    usable = max(0.0, 0.9 * srv.gpu_mem_gb[s] - (1.0 if cpu else 1.5)) * 1e9
    # serving
    weights = S.params * bits / 8
    kv_tok = 2 * S.layers * S.kv_dim * wb
    kv_full = kv_tok * (w.prompt_tokens + w.output_tokens)
    kv_mean = kv_tok * (w.prompt_tokens + w.output_tokens / 2)
    tp = 1
    while tp * usable < weights + kv_full and tp < 1024:
        tp *= 2
    tp = min(tp, n)
    replicas = max(1, n // tp)
    dev = "cpu" if cpu else "gpu"
    bw_eff, mu, ovh = P["bw_eff"][dev], P["prefill_mfu"][dev], P["step_overhead_ms_per_layer"][dev]
    ovh0 = P["step_overhead_ms"][dev]
    bw, peak = srv.mem_bw_gbs[s] * 1e9, srv.tflops[s] * 1e12

    def step(c):
        mem = (weights + c * kv_mean) / (tp * bw * bw_eff)
        comp = 2 * S.params * c / (tp * peak * mu)
        return max(mem, comp) / link ** math.log2(tp) * 1e3 + S.layers * ovh + ovh0

    pre = max(2 * S.params * w.prompt_tokens / (tp * peak * mu), weights / (tp * bw * bw_eff)) * 1e3
    conc = max(1, math.ceil(w.qps * (pre + w.output_tokens * step(1)) / 1e3 / replicas))
    phi = sp.calibration.latency_factor(srv.gpu[s])
    lat = step(conc) * phi + (pre * phi + srv.rtt_ms[s]) / w.output_tokens
    c_max = min(256, max(1, math.floor((usable * tp - weights) / kv_full)))
    thr = replicas * c_max / (step(c_max) * phi / 1e3)
    acc = s_accuracy(mode, sp.pairs.student_acc[u], sp.pairs.teacher_acc[t], S.params, T.params, rank, bits,
                     sp.calibration.accuracy_bias(w.task, sp.strategies[k]), suff)
    return dict(train_hours=hours, cost_usd=cost, train_mem_gb_per_device=train_dev / 1e9, latency_ms_per_token=lat,
                throughput_tok_s=thr, accuracy=acc, tensor_parallel=tp, concurrency=conc,
                serve_mem_gb=(weights + conc * kv_full) / 1e9, memory_ok=train_dev <= usable and
                weights + conc * kv_full <= usable * tp)


@pytest.mark.parametrize("knobs", [None, Knobs(lora_ranks=[0, 16], quant_bits=[4, 8, 16], micro_batch=[1, 8],
                                               gpus=[0, 1, 2]),
                                   Knobs(micro_batch=[8, 64], train_shares=[0.25, 1.0])])
def test_evaluate_matches_scalar_formulas(cfg_factory, knobs):
    cfg = cfg_factory(task="gsm8k", constraints__qps=5.0, planner__train_tokens=5e7)
    sp = build_space(cfg)
    if knobs is not None:
        sp.knobs = knobs
        sp.__post_init__()
    if knobs is not None and knobs.train_shares != [1.0]:  # training to a deadline, part of the budget
        sp.work.fit_deadline, sp.limits.deadline_h = True, 0.5
    X = sp.enumerate_all()
    rng = np.random.default_rng(1)
    pick = rng.choice(sp.size, size=300, replace=False)
    Xs = {k: v[pick] for k, v in X.items()}
    ev = evaluate(sp, Xs)
    mem = CONSTRAINTS.index("memory")
    for j in range(len(pick)):
        ref = scalar_candidate(sp, Xs, j)
        if sp.knobs.gpus[int(Xs["gpus"][j])] > sp.cloud.servers.gpu_count[int(Xs["server"][j])]:
            assert ev.G[j, CONSTRAINTS.index("gpus")] > 0
            continue
        for key in ("train_hours", "cost_usd", "train_mem_gb_per_device", "latency_ms_per_token", "throughput_tok_s",
                    "accuracy", "tensor_parallel", "concurrency", "serve_mem_gb"):
            assert ev.est[key][j] == pytest.approx(ref[key], rel=1e-9), (key, j)
        assert (ev.G[j, mem] <= 0) == ref["memory_ok"]
        assert ev.F[j].tolist() == pytest.approx([-ref["accuracy"], ref["latency_ms_per_token"], ref["train_hours"],
                                                  ref["cost_usd"]], rel=1e-9)
