"""The KV-cache graph computes what torch computes: several families, shapes, padded batches, cached steps."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from transformers import AutoModelForCausalLM

from stratos.export.hf import load_tokenizer
from stratos.export.onnx_graph import META_FILE, OnnxMeta, export_onnx, past_names
from stratos.export.ort_lm import OrtCausalLM
from stratos.export.parity import greedy_parity, logit_parity
from tests.helpers.tiny_export import sample_texts

QUESTIONS = ["Hand: 1m 2m 3m 4p 5p\nWhich tiles complete this hand?", "Hand: 9s", "x", "Answer: 1m 4m 7m 2p 5p 8p"]


def _prompts(tok) -> list[list[int]]:
    return [[tok.bos_token_id] + tok(q + "\n", add_special_tokens=False)["input_ids"] for q in QUESTIONS]


@pytest.mark.parametrize("family,kw", [("llama", {"heads": 4, "kv_heads": 2}), ("qwen2", {"heads": 4, "kv_heads": 1}),
                                       ("gpt2", {"heads": 2})])
def test_kv_graph_matches_torch(tiny_factory, tmp_path, family, kw):
    src = tiny_factory(family, **kw)
    model = AutoModelForCausalLM.from_pretrained(src)
    tok = load_tokenizer(src)
    attn = model.config._attn_implementation
    meta = export_onnx(model, str(tmp_path))
    assert model.config._attn_implementation == attn  # exported with eager attention, caller's kernel restored
    lm = OrtCausalLM(str(tmp_path))
    prompts = _prompts(tok)
    par = logit_parity(model, lm, prompts, tok.pad_token_id, decode_steps=4)
    assert par["max_abs_diff"] <= 1e-4
    assert [s[0] for s in par["shapes"]] == [1, 1, 1, len(prompts)]  # single prompts, then one padded batch
    gre = greedy_parity(model, lm, prompts, 24, tok.eos_token_id, tok.pad_token_id)
    assert gre["greedy_match"] == 1.0 and gre["tokens"] > 0
    assert meta.input_names[3:] == past_names(meta.num_layers) and meta.kv_cache


def test_meta_round_trip_and_io_names(tiny_export):
    meta = OnnxMeta.load(tiny_export["onnx"])
    with open(os.path.join(tiny_export["onnx"], META_FILE)) as f:
        assert json.load(f)["num_layers"] == meta.num_layers == 2
    lm = OrtCausalLM(tiny_export["onnx"])
    names = [i.name for i in lm.session.get_inputs()]
    assert names == meta.input_names
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert [o.name for o in lm.session.get_outputs()] == ["logits", *past_names(2, "present")]
    assert (meta.kv_heads, meta.head_dim) == (2, 16)  # GQA: 2 KV heads of 64 / 4


def test_graph_really_uses_the_cache(tiny_export):
    """Decoding from a corrupted cache must change the logits (a graph ignoring `past` would not)."""
    lm = OrtCausalLM(tiny_export["onnx"])
    tok = load_tokenizer(tiny_export["hf"])
    logits, state = lm.prefill(_prompts(tok)[:1], tok.pad_token_id)
    nxt = logits[:, -1].argmax(-1)
    good, _ = lm.decode(nxt, state)
    state.past = [p + 1.0 for p in state.past]
    bad, _ = lm.decode(nxt, state)
    assert np.abs(good - bad).max() > 1e-2


def test_graph_without_cache_is_the_same_function(tiny_export, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_export["hf"])
    tok = load_tokenizer(tiny_export["hf"])
    meta = export_onnx(model, str(tmp_path), kv_cache=False)
    assert meta.input_names == ["input_ids", "attention_mask", "position_ids"] and not meta.kv_cache
    lm = OrtCausalLM(str(tmp_path))
    prompts = _prompts(tok)
    assert logit_parity(model, lm, prompts, tok.pad_token_id)["max_abs_diff"] <= 1e-4
    kv = OrtCausalLM(tiny_export["onnx"])
    assert lm.greedy(prompts, 16, pad_id=tok.pad_token_id) == kv.greedy(prompts, 16, pad_id=tok.pad_token_id)


@pytest.mark.slow
def test_dynamo_exporter_parity(tiny_export, tmp_path):
    """torch.export-based exporter (opset >= 18): same calling convention, same parity (~10 s)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_export["hf"])
    tok = load_tokenizer(tiny_export["hf"])
    meta = export_onnx(model, str(tmp_path), dynamo=True, opset=17)
    assert meta.dynamo and meta.opset >= 18
    lm = OrtCausalLM(str(tmp_path))
    prompts = [[tok.bos_token_id] + tok(t.split("\n")[0], add_special_tokens=False)["input_ids"]
               for t in sample_texts(5)]
    assert logit_parity(model, lm, prompts, tok.pad_token_id)["max_abs_diff"] <= 1e-4
    assert greedy_parity(model, lm, prompts, 16, tok.eos_token_id, tok.pad_token_id)["greedy_match"] == 1.0
