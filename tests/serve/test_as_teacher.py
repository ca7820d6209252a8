"""The server as the OpenAI-compatible teacher of another Stratos run (stratos.models.openai_teacher)."""

from __future__ import annotations

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
        assert teacher.capabilities == frozenset({"text", "logprobs"})
        out = teacher.generate([Q, "Hand: 2p"], max_new_tokens=12)
    ids = onnx_engine.chat_ids([{"role": "user", "content": Q}])
    want = "".join(e.text for e in onnx_engine.stream(ids, SamplingParams(max_tokens=12, temperature=0)))
    assert [o.error for o in out] == [None, None] and out[0].text == want
    assert out[0].top_logprobs and all(len(step) == 3 for step in out[0].top_logprobs)
