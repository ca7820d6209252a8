"""Scoring given tokens over HTTP (stratos/serve/scoring.py): echo with logprobs and vLLM's prompt_logprobs equal
the log-softmax of a direct HF forward, on both backends; bad requests are 400s with OpenAI's error body."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from openai import OpenAI
from transformers import AutoModelForCausalLM

from stratos.serve.server import running
from stratos.serve.settings import ServeSettings
from tests.serve.test_metrics import get

IDS = [1, 40, 41, 42, 43, 120, 7, 250]
K = 5


@pytest.fixture(scope="module")
def reference(tiny_export) -> np.ndarray:
    """log_softmax of the HF model's logits at every position, (T, V): row i scores IDS[i + 1]."""
    model = AutoModelForCausalLM.from_pretrained(tiny_export["hf"]).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([IDS])).logits[0].double()
    return torch.log_softmax(logits, -1).numpy()


@pytest.fixture(scope="module", params=["onnx", "torch"])
def served(request, onnx_engine, torch_engine):
    engine = onnx_engine if request.param == "onnx" else torch_engine
    with running(engine, ServeSettings(port=0, max_logprobs=8)) as url:
        yield url, engine, OpenAI(base_url=url, api_key="none", max_retries=0, timeout=30)


def test_echo_with_logprobs_scores_the_prompt_like_a_forward(served, reference):
    url, engine, client = served
    r = client.completions.create(model="tiny", prompt=IDS, echo=True, logprobs=K, max_tokens=0)
    lp = r.choices[0].logprobs
    assert r.choices[0].text == engine.tokenizer.decode(IDS) and r.usage.completion_tokens == 0
    assert lp.tokens == [engine.token_text(t) for t in IDS]
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # the first token has no context
    for i in range(1, len(IDS)):
        want = reference[i - 1]
        assert lp.token_logprobs[i] == pytest.approx(want[IDS[i]], abs=1e-4)
        best = np.argsort(-want)[:K]
        top = lp.top_logprobs[i]
        # the k best by text, plus the given token when it is not among them (OpenAI: up to k + 1 entries)
        texts = {engine.token_text(int(t)) for t in best} | {engine.token_text(IDS[i])}
        assert set(top) == texts and len(top) <= K + 1
        for t in best:
            assert top[engine.token_text(int(t))] >= want[t] - 1e-4  # same text: the likelier token's value


def test_prompt_logprobs_have_vllms_shape_and_the_forwards_values(served, reference):
    url, engine, client = served
    r = client.completions.create(model="tiny", prompt=IDS, max_tokens=1, temperature=0,
                                  extra_body={"prompt_logprobs": K})
    pl = r.choices[0].model_dump()["prompt_logprobs"]
    assert len(pl) == len(IDS) and pl[0] is None
    for i in range(1, len(IDS)):
        want = reference[i - 1]
        entry = {int(t): v for t, v in pl[i].items()}  # JSON keys are token ids as strings
        best = [int(t) for t in np.argsort(-want)[:K]]
        assert [t for t, v in sorted(entry.items(), key=lambda x: x[1]["rank"])][:K] == best
        assert all(entry[t]["rank"] == r + 1 for r, t in enumerate(best))
        assert IDS[i] in entry and entry[IDS[i]]["rank"] == 1 + int((want > want[IDS[i]]).sum())
        assert len(entry) == K + (IDS[i] not in best)
        for t, v in entry.items():
            assert v["logprob"] == pytest.approx(want[t], abs=1e-4)
            assert v["decoded_token"] == engine.token_text(t)


def test_echo_with_generation_puts_the_prompt_first_and_scores_each_prompt_once(served):
    url, engine, client = served
    r = client.completions.create(model="tiny", prompt=[IDS, IDS[:4]], echo=True, logprobs=2, max_tokens=3,
                                  temperature=0, n=2)
    assert len(r.choices) == 4
    for c, ids in zip(r.choices, [IDS, IDS, IDS[:4], IDS[:4]]):
        lp = c.logprobs
        assert len(lp.tokens) == len(ids) + 3 and lp.token_logprobs[0] is None
        assert all(x is not None for x in lp.token_logprobs[1:])
        assert lp.text_offset[len(ids)] == len(engine.tokenizer.decode(ids))  # generated text follows the echo
    assert r.choices[0].logprobs == r.choices[1].logprobs  # greedy: the two choices agree


@pytest.mark.parametrize("body,param", [
    ({"echo": True, "logprobs": 9, "max_tokens": 0}, "logprobs"),  # above the server's max_logprobs (8)
    ({"prompt_logprobs": 9, "max_tokens": 1}, "prompt_logprobs"),
    ({"prompt_logprobs": -1, "max_tokens": 1}, "prompt_logprobs"),
    ({"logprobs": -2, "max_tokens": 1}, "logprobs"),
    ({"max_tokens": 0}, None),  # nothing to generate and nothing echoed
    ({"prompt_logprobs": 2, "max_tokens": 1, "stream": True}, None),
    ({"echo": True, "logprobs": 2, "max_tokens": 0, "stream": True}, None),
    ({"prompt": [1, 10**6], "echo": True, "logprobs": 2, "max_tokens": 0}, "prompt"),
])
def test_bad_scoring_requests_are_400_with_openais_error_body(served, body, param):
    url = served[0]
    status, _, text = get(url, "/v1/completions", key=None, body=json.dumps({"model": "tiny", "prompt": IDS,
                                                                               **body}).encode())
    err = json.loads(text)["error"]
    assert status == 400 and err["type"] == "invalid_request_error" and err["param"] == param, text
    assert err["message"]


def test_a_prompt_that_fills_the_context_can_still_be_scored(served):
    url, engine, client = served
    ids = [IDS[i % len(IDS)] for i in range(engine.context)]
    r = client.completions.create(model="tiny", prompt=ids, echo=True, logprobs=1, max_tokens=0)
    assert len(r.choices[0].logprobs.tokens) == engine.context
    status, _, _ = get(url, "/v1/completions", key=None, body=json.dumps(
        {"model": "tiny", "prompt": ids, "max_tokens": 1}).encode())
    assert status == 400  # generating one more token would not fit
