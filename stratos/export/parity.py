r"""ONNX-vs-torch parity: logits over several shapes and padded batches, and identical greedy tokens.

Logits. For each case (each prompt alone, then all prompts as one left-padded batch) both runtimes
prefill and then decode `decode_steps` tokens, each from its *own* cache, fed the same tokens, and

$$ \Delta = \max_{b,t,v} \; |z^{onnx}_{b,t,v} - z^{torch}_{b,t,v}| \quad \text{over real (unpadded) positions} $$

is recorded. Padded positions are excluded: their logits are never used, and runtimes may fill them
differently. Exercising decode with the cache matters: a graph that ignored `past` would still pass
a prefill-only check.

Greedy. `transformers.generate` (KV cache, position ids from the mask) and `OrtCausalLM.greedy`
must emit the same tokens for every prompt, up to and including the first EOS.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from stratos.export.onnx_graph import KVCacheWrapper, cache_geometry
from stratos.export.ort_lm import OrtCausalLM


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids (B, T), attention_mask (B, T)) with every prompt right-aligned."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[r, width - len(p):] = 1
    return ids, mask


@torch.inference_mode()
def hf_greedy(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_id: int | None, pad_id: int,
              fixed_length: bool = False) -> list[list[int]]:
    """transformers `generate` (greedy, KV cache) on a left-padded batch; rows cut after their first EOS.

    `fixed_length=True` forces exactly `max_new_tokens` tokens (benchmarks: equal work per run).
    """
    ids, mask = left_pad(prompts, pad_id)
    kw = dict(min_new_tokens=max_new_tokens) if fixed_length else {}
    gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                         use_cache=True, pad_token_id=pad_id, eos_token_id=eos_id, **kw)
    out = []
    for row in gen[:, ids.shape[1]:].tolist():
        if not fixed_length and eos_id is not None and eos_id in row:
            row = row[: row.index(eos_id) + 1]
        out.append(row)
    return out


@torch.inference_mode()
def _case_diff(wrapper: KVCacheWrapper, geometry: tuple[int, int, int], lm: OrtCausalLM, prompts, pad_id: int,
               steps: int) -> float:
    ids, mask = left_pad(prompts, pad_id)  # the same left padding `lm.prefill` applies
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    z_o, state = lm.prefill(prompts, pad_id)
    layers, kv_heads, head_dim = geometry  # torch always decodes with its cache: the reference
    empty = [torch.zeros(len(prompts), kv_heads, 0, head_dim) for _ in range(2 * layers)]
    z_t, *past_t = wrapper(ids, mask, pos, *empty)
    real = mask.bool().numpy()  # (B, T): compare real positions only
    worst = float(np.abs(z_o - z_t.numpy())[real].max())
    nxt_pos = pos[:, -1] + 1
    for _ in range(steps):
        tok = z_t[:, -1].argmax(-1)  # (B,) the same token goes to both runtimes
        mask = torch.cat([mask, torch.ones((len(prompts), 1), dtype=torch.long)], dim=1)
        z_o, state = lm.decode(tok.numpy(), state)  # (B, V) from ORT's own cache
        z_t, *past_t = wrapper(tok[:, None], mask, nxt_pos[:, None], *past_t)
        worst = max(worst, float(np.abs(z_o - z_t[:, -1].numpy()).max()))
        nxt_pos = nxt_pos + 1
    return worst


def logit_parity(model, lm: OrtCausalLM, prompts: Sequence[Sequence[int]], pad_id: int,
                 decode_steps: int = 4) -> dict:
    """Max abs logit difference over single prompts, a padded batch, and cached decode steps."""
    geometry = cache_geometry(model)
    wrapper = KVCacheWrapper(model.eval(), geometry[0])
    cases = [[p] for p in prompts[:3]] + [list(prompts)]
    diffs = [_case_diff(wrapper, geometry, lm, c, pad_id, decode_steps) for c in cases]
    shapes = [[len(c), max(len(p) for p in c)] for c in cases]
    return {"max_abs_diff": max(diffs), "per_case": diffs, "shapes": shapes, "decode_steps": decode_steps}


def greedy_parity(model, lm: OrtCausalLM, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_id: int | None,
                  pad_id: int) -> dict:
    """Share of prompts whose greedy tokens are identical between transformers and ONNX Runtime."""
    ref = hf_greedy(model, prompts, max_new_tokens, eos_id, pad_id)
    got = lm.greedy(prompts, max_new_tokens, eos_ids=[] if eos_id is None else [eos_id], pad_id=pad_id)
    same = [a == b for a, b in zip(ref, got)]
    return {"greedy_match": sum(same) / len(same), "n": len(same),
            "mismatched": [i for i, s in enumerate(same) if not s], "tokens": sum(len(r) for r in ref)}
