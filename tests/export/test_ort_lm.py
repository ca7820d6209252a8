"""OrtCausalLM: left-padded batches, EOS handling, cache growth."""

from __future__ import annotations

import numpy as np

from stratos.export.hf import load_tokenizer
from stratos.export.ort_lm import OrtCausalLM


def test_prefill_then_decode_grows_cache_and_mask(tiny_export):
    lm = OrtCausalLM(tiny_export["onnx"])
    logits, state = lm.prefill([[1, 5, 6, 7], [1, 9]], pad_id=0)
    assert logits.shape[:2] == (2, 4)
    assert state.mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert state.next_pos.tolist() == [4, 2]  # left-padded row counts positions from its first real token
    assert state.past[0].shape[2] == 4
    z, state = lm.decode(np.array([3, 3]), state)
    assert z.shape == (2, lm.meta.vocab_size) and state.past[0].shape[2] == 5 and state.mask.shape == (2, 5)


def test_padded_row_equals_unpadded_row(tiny_export):
    """Left padding must not change a row's continuation."""
    lm = OrtCausalLM(tiny_export["onnx"])
    short, long = [1, 40, 41], [1, 50, 51, 52, 53, 54, 55]
    alone = lm.greedy([short], 12, pad_id=0)
    batched = lm.greedy([long, short], 12, pad_id=0)
    assert batched[1] == alone[0]


def test_greedy_stops_at_eos_and_keeps_it(tiny_export):
    lm = OrtCausalLM(tiny_export["onnx"])
    tok = load_tokenizer(tiny_export["hf"])
    free = lm.greedy([[1, 40, 41]], 12, pad_id=0)[0]
    assert len(free) == 12  # no EOS ids given: exactly max_new_tokens
    eos = free[3]  # pretend the 4th generated token is EOS
    cut = lm.greedy([[1, 40, 41]], 12, eos_ids=[eos], pad_id=tok.pad_token_id)[0]
    assert cut == free[: free.index(eos) + 1]
