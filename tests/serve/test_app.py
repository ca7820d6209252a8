"""The HTTP API end to end on loopback, driven by the official `openai` client (and raw HTTP for abuse)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

import openai
import pytest
from openai import OpenAI

from stratos.serve.engine import OnnxEngine, SamplingParams
from stratos.serve.server import running
from stratos.serve.settings import ServeSettings

Q = "Hand: 1m 2m 3m 4p 5p\nWinning tiles?"


@pytest.fixture(scope="module")
def server(onnx_engine):
    with running(onnx_engine, ServeSettings(port=0, api_key="sekret", max_tokens=64, max_body_bytes=4096)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server, api_key="sekret", max_retries=0, timeout=30)


def raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, u.path + path, body=body, headers={"Authorization": "Bearer sekret", **(headers or {})})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def _greedy_text(engine, n: int) -> str:
    ids = engine.chat_ids([{"role": "user", "content": Q}])
    return "".join(e.text for e in engine.stream(ids, SamplingParams(max_tokens=n, temperature=0)))


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    status, _, body = raw(server.removesuffix("/v1"), "GET", "/health")  # outside /v1, as in vLLM
    assert status == 200 and json.loads(body)["backend"] == "onnx"


def test_chat_matches_the_engine(client, onnx_engine):
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": Q}], max_tokens=12,
                                       temperature=0)
    assert r.choices[0].message.content == _greedy_text(onnx_engine, 12)
    assert r.object == "chat.completion" and r.choices[0].finish_reason in ("length", "stop")
    n_prompt = len(onnx_engine.chat_ids([{"role": "user", "content": Q}]))
    assert r.usage.prompt_tokens == n_prompt and r.usage.total_tokens == n_prompt + r.usage.completion_tokens


def test_chat_logprobs(client):
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": Q}], max_tokens=8,
                                       temperature=0, logprobs=True, top_logprobs=4)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for t in content:
        assert len(t.top_logprobs) == 4 and t.top_logprobs[0].logprob == pytest.approx(t.logprob)
        assert [x.logprob for x in t.top_logprobs] == sorted((x.logprob for x in t.top_logprobs), reverse=True)
        assert isinstance(t.bytes, list)


def test_streaming_equals_non_streaming(client):
    kw = dict(model="tiny", messages=[{"role": "user", "content": Q}], max_tokens=16, temperature=0)
    full = client.chat.completions.create(**kw).choices[0].message.content
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_completions_many_prompts_and_choices(client):
    r = client.completions.create(model="tiny", prompt=["Hand: 1m", "Hand: 9s 9s"], n=2, max_tokens=5,
                                  temperature=0.8, seed=3, logprobs=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3] and r.object == "text_completion"
    for c in r.choices:
        lp = c.logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5
        assert lp.text_offset[0] == 0
    again = client.completions.create(model="tiny", prompt=["Hand: 1m", "Hand: 9s 9s"], n=2, max_tokens=5,
                                      temperature=0.8, seed=3)
    assert [c.text for c in again.choices] == [c.text for c in r.choices]  # seeded: repeatable
    stream = list(client.completions.create(model="tiny", prompt="Hand: 1m", max_tokens=6, temperature=0,
                                            stream=True, logprobs=1))
    assert "".join(c.choices[0].text for c in stream) == client.completions.create(
        model="tiny", prompt="Hand: 1m", max_tokens=6, temperature=0).choices[0].text
    echo = client.completions.create(model="tiny", prompt="Hand: 1m", max_tokens=3, temperature=0, echo=True)
    assert echo.choices[0].text.startswith("Hand: 1m")
    ids = client.completions.create(model="tiny", prompt=[1, 40, 41], max_tokens=3, temperature=0)
    assert ids.usage.prompt_tokens == 3


def test_stop_sequence(client):
    kw = dict(model="tiny", messages=[{"role": "user", "content": Q}], max_tokens=24, temperature=0)
    full = client.chat.completions.create(**kw).choices[0].message.content
    stop = full[5:8]
    cut = client.chat.completions.create(**kw, stop=[stop]).choices[0]
    assert cut.message.content == full[: full.index(stop)] and cut.finish_reason == "stop"


@pytest.mark.parametrize("kw,status,param", [
    (dict(model="other"), 404, "model"),
    (dict(max_tokens=65), 400, "max_tokens"),
    (dict(temperature=3.0), 400, "temperature"),
    (dict(n=9), 400, "n"),
    (dict(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    (dict(presence_penalty=0.5), 400, None),
    (dict(top_logprobs=3), 400, None),
    (dict(messages=[]), 400, "messages"),
    (dict(messages=[{"role": "user", "content": "x " * 300}]), 400, "messages"),  # the prompt alone is too long
    (dict(messages=[{"role": "user", "content": "x " * 100}], max_tokens=64), 400, "max_tokens"),  # with the budget
])
def test_bad_requests_are_4xx_in_openai_shape(client, kw, status, param):
    args = dict(model="tiny", messages=[{"role": "user", "content": Q}], max_tokens=8, **{})
    args.update(kw)
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(**args)
    assert e.value.status_code == status
    err = e.value.body if isinstance(e.value.body, dict) and "message" in e.value.body else e.value.body["error"]
    assert err["message"] and err["type"]
    if param:
        assert err["param"] is not None and err["param"].startswith(param)


def test_raw_abuse(server):
    status, _, body = raw(server, "POST", "/chat/completions", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    big = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    status, _, body = raw(server, "POST", "/chat/completions", big, {"Content-Type": "application/json"})
    assert status == 413 and "exceeds" in json.loads(body)["error"]["message"]
    u = urllib.parse.urlparse(server)  # a chunked upload (no Content-Length) crossing the limit
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", u.path + "/chat/completions", body=iter([b'{"model": "tiny", "x": "', b"x" * 3000,
                                                                b"x" * 3000, b'"}']),
                 headers={"Content-Type": "application/json", "Authorization": "Bearer sekret"}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"]["code"] == "request_too_large"
    conn.close()
    status, _, body = raw(server, "GET", "/models", headers={"Authorization": "Bearer wrong"})
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    status, _, body = raw(server, "GET", "/nowhere")
    assert status == 404 and "error" in json.loads(body)
    status, _, _ = raw(server, "GET", "/models")  # still serving after all that
    assert status == 200


class SlowEngine(OnnxEngine):
    """10 ms per decode step: a request that reliably outlives the next one's arrival."""

    def _step(self, token, state):
        time.sleep(0.01)
        return super()._step(token, state)


def test_admission_limit_and_release(tiny_export):
    settings = ServeSettings(port=0, max_concurrency=1, max_queue=0, max_tokens=512)
    with running(SlowEngine(tiny_export["onnx"]), settings) as url:
        u = urllib.parse.urlparse(url)
        body = json.dumps({"model": "tiny", "prompt": "Hand: 1m", "max_tokens": 240, "temperature": 0,
                           "stream": True}).encode()
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("POST", u.path + "/completions", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.readline().startswith(b"data: ")  # holding the only slot
        status, headers, err = raw(url, "POST", "/completions", json.dumps(
            {"model": "tiny", "prompt": "x", "max_tokens": 2}).encode(), {"Content-Type": "application/json"})
        assert status == 429 and headers.get("retry-after") == "1"
        assert json.loads(err)["error"]["code"] == "rate_limit_exceeded"
        conn.close()  # client walks away mid-stream: the slot must come back
        deadline, status = time.time() + 10, 0
        while time.time() < deadline and status != 200:
            status, _, _ = raw(url, "POST", "/completions", json.dumps(
                {"model": "tiny", "prompt": "x", "max_tokens": 2}).encode(), {"Content-Type": "application/json"})
            time.sleep(0.05)
        assert status == 200


def test_concurrent_requests_all_succeed(onnx_engine):
    settings = ServeSettings(port=0, max_concurrency=2, max_queue=16)
    with running(onnx_engine, settings) as url:
        client = OpenAI(base_url=url, api_key="none", max_retries=0, timeout=60)
        results, errors = [], []

        def one(i: int) -> None:
            try:
                r = client.completions.create(model="tiny", prompt=f"Hand: {i}m", max_tokens=8, temperature=0)
                results.append(r.usage.completion_tokens)
            except Exception as e:  # collected and asserted below
                errors.append(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(results) == 10
