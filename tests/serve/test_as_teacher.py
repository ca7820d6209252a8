"""The server as the OpenAI-compatible teacher of another Stratos run (stratos.models.openai_teacher), including
the scorer of on-policy KD (stratos.models.openai_scoring): both request shapes against the real server."""

from __future__ import annotations

import numpy as np
import pytest

from stratos.serve.engine import SamplingParams
from stratos.serve.server import running
from stratos.serve.settings import ServeSettings

Q = "Hand: 1m 1m 1m 2m 3m 4m 5m 6m 7m 8m 9m 9m 9m\nWinning tiles?"


def test_openai_teacher_gets_text_and_logprobs(onnx_engine, monkeypatch):
    from stratos.models.openai_teacher import OpenAITeacher

    monkeypatch.setenv("STRATOS_TEST_KEY", "k")
    with running(onnx_engine, ServeSettings(port=0, api_key="k")) as url:
        teacher = OpenAITeacher(name="stratos", base_url=url, model="tiny", api_key_env="STRATOS_TEST_KEY",
                                top_logprobs=3, max_new_tokens=12, temperature=0.0)
        assert teacher.capabilities == frozenset({"text", "logprobs"}) and teacher.scoring.api
        out = teacher.generate([Q, "Hand: 2p"], max_new_tokens=12)
    ids = onnx_engine.chat_ids([{"role": "user", "content": Q}])
    want = "".join(e.text for e in onnx_engine.stream(ids, SamplingParams(max_tokens=12, temperature=0)))
    assert [o.error for o in out] == [None, None] and out[0].text == want
    assert out[0].top_logprobs and all(len(step) == 3 for step in out[0].top_logprobs)


@pytest.mark.parametrize("api", ["auto", "echo", "prompt_logprobs"])
def test_openai_teacher_scores_given_ids_like_the_engine(onnx_engine, api):
    from stratos.models.openai_teacher import OpenAITeacher

    seqs = [[1, 40, 41, 42, 43], [1, 7, 250, 12]]
    with running(onnx_engine, ServeSettings(port=0)) as url:
        teacher = OpenAITeacher(name="stratos", base_url=url, model="tiny", api_key_env="", score_api=api,
                                score_top_logprobs=4)
        assert teacher.scoring.api == ("prompt_logprobs" if api == "auto" else api)
        out = teacher.score(seqs)
    for ids, s in zip(seqs, out):
        z = onnx_engine.logits(ids).astype(np.float64)
        lp = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True)
        assert s.texts[1:] == [onnx_engine.token_text(t) for t in ids[1:]]
        for i in range(1, len(ids)):
            assert s.logprobs[i] == pytest.approx(lp[i - 1, ids[i]], abs=1e-9)
            best = np.argsort(-lp[i - 1])[:4]
            if teacher.scoring.api == "prompt_logprobs":
                assert [tid for _, tid, _ in s.top[i]][:4] == best.tolist()
            else:
                texts = {onnx_engine.token_text(int(b)) for b in best} | {onnx_engine.token_text(ids[i])}
                assert {t for t, _, _ in s.top[i]} == texts  # by text: tokens sharing one collapse
