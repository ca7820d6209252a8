"""Engines: ONNX and torch generate the same tokens; sampling, logprobs and stop reasons behave."""

from __future__ import annotations

import numpy as np
import pytest

from stratos.errors import UserError
from stratos.export.ort_lm import OrtCausalLM
from stratos.serve.engine import SamplingParams, load_engine, sample
from stratos.serve.settings import resolve_model_dir

PROMPT = [1, 40, 41, 42, 43]


def _run(engine, **kw):
    return list(engine.stream(PROMPT, SamplingParams(**kw)))


def test_onnx_and_torch_agree(onnx_engine, torch_engine):
    a = _run(onnx_engine, max_tokens=16, temperature=0, logprobs=3, ignore_eos=True)
    b = _run(torch_engine, max_tokens=16, temperature=0, logprobs=3, ignore_eos=True)
    assert [e.token_id for e in a] == [e.token_id for e in b]
    assert max(abs(x.logprob - y.logprob) for x, y in zip(a, b)) < 1e-4
    assert [t for t, _ in a[0].top] == [t for t, _ in b[0].top]


def test_greedy_is_the_graphs_greedy(onnx_engine, tiny_export):
    ev = _run(onnx_engine, max_tokens=12, temperature=0, ignore_eos=True)
    ref = OrtCausalLM(tiny_export["onnx"]).greedy([PROMPT], 12, pad_id=0)[0]
    assert [e.token_id for e in ev] == ref
    assert ev[-1].finish_reason == "length" and all(e.finish_reason is None for e in ev[:-1])


def test_logprobs_are_sorted_and_greedy_picks_the_top(onnx_engine):
    for e in _run(onnx_engine, max_tokens=6, temperature=0, logprobs=5, ignore_eos=True):
        lps = [lp for _, lp in e.top]
        assert lps == sorted(lps, reverse=True) and len(lps) == 5
        assert e.top[0][0] == e.token_id and e.logprob == pytest.approx(lps[0])
        assert np.exp(lps).sum() <= 1.0 + 1e-9


def test_seed_repeats_and_varies(onnx_engine):
    a = _run(onnx_engine, max_tokens=16, temperature=1.0, seed=1, ignore_eos=True)
    b = _run(onnx_engine, max_tokens=16, temperature=1.0, seed=1, ignore_eos=True)
    c = _run(onnx_engine, max_tokens=16, temperature=1.0, seed=2, ignore_eos=True)
    assert [e.token_id for e in a] == [e.token_id for e in b] != [e.token_id for e in c]
    tiny_p = _run(onnx_engine, max_tokens=8, temperature=1.0, top_p=1e-9, seed=3, ignore_eos=True)
    greedy = _run(onnx_engine, max_tokens=8, temperature=0, ignore_eos=True)
    assert [e.token_id for e in tiny_p] == [e.token_id for e in greedy]  # nucleus of one token


def test_sample_follows_the_distribution():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([1.0, 3.0, 1e-12]))
    draws = [sample(logits, SamplingParams(max_tokens=1, temperature=1.0), rng) for _ in range(4000)]
    assert abs(np.mean(np.array(draws) == 1) - 0.75) < 0.03
    hot = [sample(logits, SamplingParams(max_tokens=1, temperature=100.0), rng) for _ in range(3000)]
    assert np.mean(np.array(hot) == 2) > 0.2  # high temperature flattens toward uniform
    assert sample(logits, SamplingParams(max_tokens=1, temperature=0.0), rng) == 1


def test_eos_stops_without_text(onnx_engine):
    first = _run(onnx_engine, max_tokens=4, temperature=0, ignore_eos=True)[0].token_id
    saved = onnx_engine.eos_ids
    onnx_engine.eos_ids = {first}
    try:
        ev = _run(onnx_engine, max_tokens=4, temperature=0)
    finally:
        onnx_engine.eos_ids = saved
    assert len(ev) == 1 and ev[0].finish_reason == "stop" and ev[0].text == ""


def test_model_dir_resolution(tiny_export, tmp_path):
    root = tiny_export["hf"].rsplit("/", 1)[0]
    assert resolve_model_dir(root, "auto") == (tiny_export["onnx"], "onnx")  # an export dir: ONNX first
    assert resolve_model_dir(root, "torch") == (tiny_export["hf"], "torch")
    assert resolve_model_dir(tiny_export["hf"], "auto") == (tiny_export["hf"], "torch")
    with pytest.raises(UserError, match="backend onnx"):
        resolve_model_dir(tiny_export["hf"], "onnx")
    with pytest.raises(UserError, match="'model'"):
        load_engine(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="'backend'"):
        resolve_model_dir(root, "tensorrt")
    assert load_engine(root, "onnx").name == "tiny"  # the name recorded at export
