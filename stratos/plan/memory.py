r"""Memory the planner asks of a server: training (student + teacher) and serving (student).

All functions are numpy-broadcasting array functions (any mix of scalars and arrays) returning
bytes. Notation: $N$ parameters, $L$ layers, $h$ hidden width, $d_{kv}$ the K/V projection
width, $V$ vocabulary, $b$ sequences per micro-batch, $s$ sequence length, $w$ bytes per
weight / activation element (2 for bf16 on GPUs, 4 for fp32 on CPUs).

Training, student, full fine-tuning with AdamW (mixed precision: bf16 weights + bf16 grads +
fp32 master + two fp32 moments, ZeRO paper, Rajbhandari et al. 2020; fp32 on CPU: 4 + 4 + 8):

$$ M_{\mathrm{full}} = 16 N $$

LoRA of rank $r$ on `targets` projections per layer (q and v by default) freezes the base:

$$ M_{\mathrm{lora}} = w N + 16 P_r, \qquad P_r = r L \cdot \mathrm{targets} \cdot (h + (h + d_{kv}) / 2) $$

(exact for q (h->h) and v (h->d_kv): $r(2h) + r(h + d_{kv})$).

Activations with activation checkpointing and flash attention (Korthikanti et al. 2022: a layer
holds $s b h \cdot 34$ bytes in 16-bit without the $5as/h$ attention term; checkpointing keeps only
each layer's input, $2 s b h$ bytes, plus one layer being recomputed), and fp32 logits with
their gradient, plus the teacher's logits when logit KD runs online:

$$ A = \tfrac{w}{2}\, b s h (2L + 34) + 4 b s (2 V_s + [\mathrm{logit}]\, V_t) $$

With $n$ accelerators in data parallel, model states (student and a white-box teacher) are
sharded (FSDP / ZeRO-3) and each device holds its own micro-batch's activations. A teacher in
logit mode sits beside the student ($w N_t$); in generation modes (sequence-level KD, injection)
it writes the data before training starts, so the peak is the larger of the two phases, the
teacher holding its weights and a KV cache. Per device:

$$ m_{\mathrm{train}} = \begin{cases} (M_s + w N_t) / n + A & \text{logit} \\
   \max\big(M_s / n + A,\; (w N_t + 2 L_t d_{kv,t} w\, s b) / n\big) & \text{generation} \end{cases} $$

Serving keeps the (merged, possibly quantised to $q$ bits) weights and a KV cache per sequence:

$$ M_{\mathrm{serve}} = N q / 8 + c \cdot 2 L d_{kv} w (s_{\mathrm{prompt}} + s_{\mathrm{out}}) $$

for $c$ concurrent sequences.
"""

from __future__ import annotations

import numpy as np

ADAM_BYTES_PER_PARAM = 16.0  # weights + grads + optimizer state per trainable parameter
USABLE_FRACTION = 0.9  # of accelerator memory a job can count on (fragmentation, allocator slack)
OVERHEAD_GB = {"gpu": 1.5, "cpu": 1.0}  # CUDA context / Python + torch, per device


def lora_params(rank, layers, hidden, kv_dim, targets=2):
    """Trainable LoRA parameters $P_r$ (0 where rank is 0)."""
    return rank * layers * targets * (hidden + (hidden + kv_dim) / 2.0)


def student_train_bytes(params, layers, hidden, kv_dim, rank, wbytes, targets=2):
    """$M_{full}$ where rank == 0, else $M_{lora}$ (weights + grads + optimizer, no activations)."""
    full = ADAM_BYTES_PER_PARAM * params
    lora = wbytes * params + ADAM_BYTES_PER_PARAM * lora_params(rank, layers, hidden, kv_dim, targets)
    return np.where(np.asarray(rank) > 0, lora, full)


def activation_bytes(micro_batch, seq, hidden, layers, vocab_s, vocab_t, logit, wbytes):
    """$A$: checkpointed activations + fp32 logits (+ their gradient, + teacher logits in logit mode)."""
    bs = micro_batch * seq
    return (wbytes / 2.0) * bs * hidden * (2 * layers + 34) + 4.0 * bs * (2 * vocab_s + np.where(logit, vocab_t, 0))


def teacher_gen_bytes(params_t, layers_t, kv_dim_t, seq, micro_batch, wbytes):
    """Teacher generating data: weights + KV cache for `micro_batch` sequences of `seq` tokens."""
    return wbytes * params_t + 2.0 * layers_t * kv_dim_t * wbytes * seq * micro_batch


def train_bytes_per_device(student_state, activations, teacher_weights, teacher_gen, logit, n_devices):
    """$m_{train}$ from the parts above (teacher terms are 0 for engine / API teachers)."""
    n = np.maximum(n_devices, 1)
    return np.where(logit, (student_state + teacher_weights) / n + activations,
                    np.maximum(student_state / n + activations, teacher_gen / n))


def kv_bytes_per_token(layers, kv_dim, wbytes):
    """K and V for one token across all layers."""
    return 2.0 * layers * kv_dim * wbytes


def serve_bytes(params, quant_bits, layers, kv_dim, wbytes, context_tokens, concurrency):
    """$M_{serve}$ for `concurrency` sequences of `context_tokens` each."""
    return params * quant_bits / 8.0 + concurrency * kv_bytes_per_token(layers, kv_dim, wbytes) * context_tokens


def usable_bytes_per_device(mem_gb, is_cpu):
    """Bytes one accelerator (or a CPU node's RAM) offers a job after overheads."""
    overhead = np.where(is_cpu, OVERHEAD_GB["cpu"], OVERHEAD_GB["gpu"])
    return np.maximum(0.0, USABLE_FRACTION * mem_gb - overhead) * 1e9
