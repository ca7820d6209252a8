"""Generation speed: ONNX Runtime (KV cache) vs transformers `generate` (KV cache), same prompts.

Each prompt is answered alone (batch 1, as a serving request is), greedily, for exactly
`new_tokens` tokens (EOS ignored) so both runtimes do the same work. Reported per runtime:

    tokens_per_s   total generated tokens / total wall time
    p50_ms, p95_ms latency of one whole request (prefill + new_tokens decode steps)

and `speedup` = onnx tokens/s / torch tokens/s, measured in the same process, interleaved prompt by
prompt so background load on a shared machine hits both runtimes alike. Outputs must be identical
(`same_tokens`), else the comparison would be between different computations.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from stratos.export.ort_lm import OrtCausalLM
from stratos.export.parity import hf_greedy


def _stats(lat: list[float], tokens: int) -> dict:
    a = np.asarray(lat) * 1e3
    return {"tokens_per_s": tokens / max(sum(lat), 1e-9), "p50_ms": float(np.percentile(a, 50)),
            "p95_ms": float(np.percentile(a, 95)), "requests": len(lat)}


def compare_generate(model, lm: OrtCausalLM, prompts: Sequence[Sequence[int]], new_tokens: int, pad_id: int,
                     repeats: int = 1, warmup: int = 1) -> dict:
    """{"torch": stats, "onnx": stats, "speedup": x, "same_tokens": bool} over `prompts` x `repeats`."""
    model.eval()
    for p in list(prompts)[:warmup]:  # first calls pay one-off costs (allocator, ORT arena, generate setup)
        hf_greedy(model, [p], new_tokens, None, pad_id, fixed_length=True)
        lm.greedy([p], new_tokens, pad_id=pad_id)
    lat_t, lat_o, same = [], [], True
    for _ in range(repeats):
        for p in prompts:
            t0 = time.perf_counter()
            ref = hf_greedy(model, [p], new_tokens, None, pad_id, fixed_length=True)
            t1 = time.perf_counter()
            got = lm.greedy([p], new_tokens, pad_id=pad_id)
            t2 = time.perf_counter()
            lat_t.append(t1 - t0)
            lat_o.append(t2 - t1)
            same &= ref == got
    n = new_tokens * len(lat_t)
    out = {"torch": _stats(lat_t, n), "onnx": _stats(lat_o, n), "same_tokens": bool(same),
           "new_tokens": new_tokens, "threads": torch.get_num_threads()}
    out["speedup"] = out["onnx"]["tokens_per_s"] / out["torch"]["tokens_per_s"]
    return out
