r"""Estimators: training time, cost, serving latency and throughput, predicted accuracy.

Every function broadcasts over numpy arrays (or takes scalars), so the planner evaluates
hundreds of thousands of candidates in one pass; `tests/plan/test_estimators.py` checks them
against the scalar formulas written out below. The constants in `PRIORS` are priors, not
measurements: `stratos.plan.calibration` replaces MFU, latency and accuracy offsets with values
learned from measured runs.

Notation: $N_s, N_t$ student / teacher parameters (a teacher that runs elsewhere, an engine
or an API, counts 0 here), $D$ training tokens, $n$ accelerators used, $P$ peak FLOP/s per
accelerator, $B$ memory bandwidth per accelerator.
"""

from __future__ import annotations

import numpy as np

PRIORS = {
    # training throughput
    "batch_half": 1.0,  # MFU(b) = MFU_ref * (b / (b + 1)) / (8 / 9): small micro-batches under-use the GPU
    "batch_ref": 8.0,
    "link_eff": {"nvlink": 0.95, "xgmi": 0.93, "pcie": 0.85, "none": 1.0, "ethernet": 0.7},  # per doubling
    # serving
    "bw_eff": {"gpu": 0.7, "cpu": 0.5},  # achieved share of memory bandwidth in decode
    "prefill_mfu": {"gpu": 0.5, "cpu": 0.4},
    "step_overhead_ms_per_layer": {"gpu": 0.06, "cpu": 0.06},  # ~12 kernels x 5 us per layer / op dispatch on CPU
    # the decode loop's own work per token, whatever the model's size (HF generate on CPU: logits processors,
    # stopping criteria, cache bookkeeping): measured on 2 CPU cores, a 2-layer h64 student decodes at 1.0 ms/token
    # and the 4-layer h128 one at 1.47, where the terms above give 0.26 and ~1.1. Not measured on a GPU, where
    # vLLM's CUDA graphs keep the per-step work in the per-layer term
    "step_overhead_ms": {"gpu": 0.0, "cpu": 0.6},
    # accuracy (fractions in [0, 1])
    "size_prior_n0": 30e9,  # models with no score for a task: a(N) = 1 / (1 + sqrt(N0 / N))
    "unknown_accuracy": 0.5,  # a teacher with neither a score nor a size (API)
    "transfer": {"logit": 0.9, "sequence": 0.8, "injection": 0.75, "labels": 0.6},  # eta per mode
    "injection_kappa": 0.6,  # verified answers + rules corpus close this share of the teacher's gap to 1
    "capacity_half": 5e6,  # student params at which half the transferable gain is reached (sqrt scale)
    "gap_gamma": 0.15,  # capacity-gap penalty per decade of teacher/student ratio beyond 100x
    "lora_gap": 0.1,  # LoRA keeps 1 - 0.1 exp(-r / 16) of full fine-tuning's gain
    "quant_penalty": {16: 0.0, 8: 0.003, 4: 0.02},  # accuracy lost per serving precision (bits)
    # training tokens: half the gain is reached after D_1/2 tokens. A student trained from scratch (built
    # from config) needs tokens in proportion to its size; a pretrained one only adapts (a fixed D_1/2).
    "scratch_tokens_per_param": 5.0,
    "finetune_tokens_half": 1e6,
}


# ---------------------------------------------------------------- training
def teacher_token_factor(mode, data_epochs, rejection_samples):
    r"""Teacher tokens per training token, $D_t / D$.

    logit: the teacher scores every training token online, 1. sequence: it writes each unique
    example once per rejection sample, $r / e$. injection: it writes each unique example once,
    $1 / e$. labels: 0. ($e$ = data epochs.)
    """
    mode = np.asarray(mode)
    return np.select([mode == "logit", mode == "sequence", mode == "injection"],
                     [1.0, rejection_samples / data_epochs, 1.0 / data_epochs], 0.0)


def train_flops(n_student, n_teacher, tokens, teacher_tokens, lora_rank):
    r"""Total training FLOPs.

    $$ C = k\, N_s D + 2 N_t D_t, \qquad k = 6 \text{ (full)},\ 4 \text{ (LoRA)} $$
    (forward 2ND, backward 4ND, of which 2ND are weight gradients a frozen base skips; the teacher
    runs forward only.)
    """
    k = np.where(np.asarray(lora_rank) > 0, 4.0, 6.0)
    return k * n_student * tokens + 2.0 * n_teacher * teacher_tokens


def link_efficiency(links):
    """Scaling efficiency per doubling of accelerators for each interconnect name (unknown: 0.8)."""
    return np.array([PRIORS["link_eff"].get(str(x), 0.8) for x in np.atleast_1d(links)], dtype=float).reshape(
        np.shape(links))


def achieved_flops(n_gpus, peak_tflops, mfu_ref, micro_batch, link_eff):
    r"""Sustained FLOP/s of $n$ accelerators.

    $$ F = n P \cdot \min\Big(0.95,\ \mathrm{MFU}_{\mathrm{ref}}
       \frac{b/(b + b_{1/2})}{b_{\mathrm{ref}}/(b_{\mathrm{ref}} + b_{1/2})}\Big)
       \cdot \epsilon_{\mathrm{link}}^{\log_2 n} $$
    """
    return n_gpus * peak_tflops * 1e12 * effective_mfu(mfu_ref, micro_batch) * link_eff ** np.log2(
        np.maximum(n_gpus, 1))


def effective_mfu(mfu_ref, micro_batch):
    """MFU at micro-batch b, from the reference MFU at b_ref = 8 (capped at 0.95)."""
    bh, bref = PRIORS["batch_half"], PRIORS["batch_ref"]
    return np.minimum(0.95, mfu_ref * (micro_batch / (micro_batch + bh)) / (bref / (bref + bh)))


def train_hours(flops, achieved, time_factor=1.0):
    r"""$T = C / F \cdot \tau / 3600$, with $\tau \ge 1$ the spot-preemption stretch."""
    return flops / achieved * time_factor / 3600.0


def cost_usd(hours, price_hour, api_tokens, api_usd_per_mtok):
    r"""$\$ = T \cdot c_{\mathrm{hour}} + D_{\mathrm{api}} / 10^6 \cdot c_{\mathrm{api}}$."""
    return hours * price_hour + api_tokens / 1e6 * api_usd_per_mtok


# ---------------------------------------------------------------- serving
def decode_step_ms(weight_bytes, kv_bytes_read, flops_per_step, tp, bw_gbs, bw_eff, peak_tflops, mfu, layers,
                   overhead_ms_per_layer, link_eff, overhead_ms=0.0):
    r"""One decode step for a replica of `tp` accelerators, ms.

    $$ t = \max\!\Big(\frac{W + K}{t_p B \eta_B},\ \frac{2 N c}{t_p P \mu}\Big) / \epsilon^{\log_2 t_p}
         + L\, o + o_0 $$
    memory-bound reading weights $W$ and the KV cache $K$, or compute-bound at concurrency $c$,
    plus a per-layer dispatch overhead $o$ and the decode loop's fixed work per step $o_0$ (shared by
    the $c$ sequences of a batched step).
    """
    mem = (weight_bytes + kv_bytes_read) / (tp * bw_gbs * 1e9 * bw_eff)
    comp = flops_per_step / (tp * peak_tflops * 1e12 * mfu)
    return (np.maximum(mem, comp) / link_eff ** np.log2(np.maximum(tp, 1)) * 1e3 + layers * overhead_ms_per_layer
            + overhead_ms)


def prefill_ms(n_params, prompt_tokens, weight_bytes, tp, peak_tflops, mfu, bw_gbs, bw_eff):
    r"""Prompt processing, ms: $\max(2 N s_p / (t_p P \mu),\ W / (t_p B \eta_B))$."""
    comp = 2.0 * n_params * prompt_tokens / (tp * peak_tflops * 1e12 * mfu)
    mem = weight_bytes / (tp * bw_gbs * 1e9 * bw_eff)
    return np.maximum(comp, mem) * 1e3


def latency_ms_per_token(step_ms, prefill, rtt, output_tokens):
    r"""Mean time per generated token seen by the user, ms: $t_{\mathrm{step}} + (t_{\mathrm{prefill}} + \mathrm{RTT}) / s_{\mathrm{out}}$."""
    return step_ms + (prefill + rtt) / output_tokens


def throughput_tok_s(replicas, concurrency, step_ms):
    r"""Generated tokens per second: $r \cdot c / t_{\mathrm{step}}$."""
    return replicas * concurrency / (step_ms / 1e3)


# ---------------------------------------------------------------- accuracy
def size_prior(params):
    r"""Accuracy of a model with no score for the task: $a(N) = 1 / (1 + \sqrt{N_0 / N})$, $N_0 = 3\cdot10^{10}$."""
    p = np.maximum(np.asarray(params, dtype=float), 1.0)
    return 1.0 / (1.0 + np.sqrt(PRIORS["size_prior_n0"] / p))


def distill_target(mode, teacher_acc):
    r"""What the student can at best learn: the teacher's accuracy $a_t$ for alignment (logit,
    sequence); $\kappa + (1 - \kappa) a_t$ for injection (verified answers and the rules corpus fix
    a share $\kappa$ of what the teacher gets wrong); 1 for verified labels."""
    mode = np.asarray(mode)
    k = PRIORS["injection_kappa"]
    return np.select([mode == "injection", mode == "labels"], [k + (1 - k) * teacher_acc, 1.0], teacher_acc)


def data_sufficiency(tokens, n_student, from_config):
    r"""Share of the distillation gain reached after $D$ training tokens: $s = D / (D + D_{1/2})$, with
    $D_{1/2} = k N_s$ for a student trained from scratch ($k$ = 5 tokens per parameter) and a fixed
    $10^6$ tokens for a pretrained one (it only adapts to the task)."""
    d = np.maximum(np.asarray(tokens, dtype=float), 0.0)
    half = np.where(np.asarray(from_config, dtype=bool),
                    PRIORS["scratch_tokens_per_param"] * np.asarray(n_student, dtype=float),
                    PRIORS["finetune_tokens_half"])
    return d / (d + np.maximum(half, 1.0))


def predicted_accuracy(mode, student_acc, teacher_acc, n_student, n_teacher, lora_rank, quant_bits, bias=0.0,
                       sufficiency=1.0):
    r"""Accuracy of the distilled student.

    $$ a = \mathrm{clip}\Big(a_s + \eta_m\, \mathrm{cap}(N_s)\, g(\rho)\, \lambda(r)\, s\,
           (a^\star - a_s)^+ - \pi(q) + \beta,\ 0, 1\Big) $$
    $a_s$ the student's own prior, $a^\star$ = `distill_target`, $\eta_m$ the transfer of mode $m$,
    $\mathrm{cap}(N) = \sqrt N / (\sqrt N + \sqrt{N_{1/2}})$,
    capacity gap (alignment modes only, $\rho = N_t / N_s$, Mirzadeh et al. 2020):
    $g = 1 / (1 + \gamma \max(0, \log_{10}\rho - 2))$,
    LoRA $\lambda(r) = 1 - 0.1 e^{-r/16}$ ($r = 0$: full fine-tuning, 1), quantisation penalty
    $\pi(q)$, $s$ the token sufficiency (`data_sufficiency`; 1 = trained to saturation) and $\beta$ the
    calibrated offset for this task and strategy.
    """
    base, gain = accuracy_parts(mode, student_acc, teacher_acc, n_student, n_teacher, lora_rank, quant_bits, bias)
    return np.clip(base + gain * sufficiency, 0.0, 1.0)


def accuracy_parts(mode, student_acc, teacher_acc, n_student, n_teacher, lora_rank, quant_bits, bias=0.0):
    """(base, gain) of `predicted_accuracy` before clipping: $a = \mathrm{clip}(\text{base} + \text{gain}\cdot s)$,
    base $= a_s - \pi(q) + \beta$, gain $= \eta_m\,\mathrm{cap}\,g\,\lambda\,(a^\star - a_s)^+$."""
    mode = np.asarray(mode)
    eta = np.select([mode == m for m in PRIORS["transfer"]], list(PRIORS["transfer"].values()), 0.0)
    ns = np.maximum(np.asarray(n_student, dtype=float), 1.0)
    cap = np.sqrt(ns) / (np.sqrt(ns) + np.sqrt(PRIORS["capacity_half"]))
    ratio = np.where(np.asarray(n_teacher) > 0, n_teacher / ns, 1.0)
    align = (mode == "logit") | (mode == "sequence")
    gap = np.where(align, 1.0 / (1.0 + PRIORS["gap_gamma"] * np.maximum(0.0, np.log10(np.maximum(ratio, 1e-12)) - 2)),
                   1.0)
    r = np.asarray(lora_rank, dtype=float)
    lam = np.where(r > 0, 1.0 - PRIORS["lora_gap"] * np.exp(-r / 16.0), 1.0)
    target = distill_target(mode, teacher_acc)
    gain = eta * cap * gap * lam * np.maximum(0.0, target - student_acc)
    return student_acc - quant_penalty(quant_bits) + bias, gain


def quant_penalty(bits):
    """$\\pi(q)$: table for 16/8/4 bits (>= 16: 0; other widths: 0.05)."""
    b = np.asarray(bits)
    table = PRIORS["quant_penalty"]
    return np.select([b >= 16, b == 8, b == 4], [table[16], table[8], table[4]], 0.05)
