"""The parity check can fail: a graph of a different model is caught by logits and by greedy tokens."""

from __future__ import annotations

from transformers import AutoModelForCausalLM

from stratos.export.hf import load_tokenizer
from stratos.export.ort_lm import OrtCausalLM
from stratos.export.parity import greedy_parity, hf_greedy, left_pad, logit_parity


def test_left_pad():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_other_model_fails_parity(tiny_export, tiny_factory):
    other = AutoModelForCausalLM.from_pretrained(tiny_factory("llama", heads=4, kv_heads=2, seed=7))
    lm = OrtCausalLM(tiny_export["onnx"])
    tok = load_tokenizer(tiny_export["hf"])
    prompts = [[1, 40, 41, 42], [1, 50]]
    assert logit_parity(other, lm, prompts, tok.pad_token_id)["max_abs_diff"] > 1e-2
    assert greedy_parity(other, lm, prompts, 16, None, tok.pad_token_id)["greedy_match"] < 1.0


def test_hf_greedy_fixed_length_ignores_eos(tiny_export):
    model = AutoModelForCausalLM.from_pretrained(tiny_export["hf"])
    out = hf_greedy(model, [[1, 40, 41]], 10, eos_id=None, pad_id=0, fixed_length=True)
    assert len(out[0]) == 10
