"""/metrics on a live server: the counters equal what was sent and what the responses' usage said."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from stratos.serve.engine import OnnxEngine
from stratos.serve.server import running
from stratos.serve.settings import ServeSettings

KEY = "sekret"
CHAT = [{"role": "user", "content": "Hand: 1m 2m 3m 4p 5p\nWinning tiles?"}]


def get(url: str, path: str, key: str | None = KEY, body: bytes | None = None) -> tuple[int, dict, str]:
    """Raw HTTP against the server root (url is ".../v1"): status, headers (lower-case), body text."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, text


def scrape(url: str) -> dict[str, list]:
    """{family name: samples} from /metrics."""
    status, headers, text = get(url, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(families: dict, sample_name: str, **labels) -> float:
    [v] = [s.value for fam in families.values() for s in fam
           if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())]
    return v


def http_counts(families: dict) -> dict[tuple[str, str, str], float]:
    return {(s.labels["handler"], s.labels["method"], s.labels["status"]): s.value
            for s in families["stratos_http_requests"] if s.name == "stratos_http_requests_total"}


def test_counters_equal_what_was_served(onnx_engine):
    settings = ServeSettings(port=0, api_key=KEY, max_tokens=64, max_body_bytes=4096)
    with running(onnx_engine, settings) as url:
        client = OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=30)
        usages = []
        r = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=12, temperature=0)
        usages.append(r.usage)
        chunks = list(client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=9, temperature=0,
                                                     stream=True, stream_options={"include_usage": True}))
        usages.append(chunks[-1].usage)
        r = client.completions.create(model="tiny", prompt=["Hand: 1m", "Hand: 9s 9s"], n=2, max_tokens=5,
                                      temperature=0.7, seed=1)
        usages.append(r.usage)
        chunks = list(client.completions.create(model="tiny", prompt="Hand: 5p", max_tokens=7, temperature=0,
                                                stream=True, stream_options={"include_usage": True}))
        usages.append(chunks[-1].usage)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="tiny", messages=CHAT, temperature=3.0)
        big = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
        assert get(url, "/v1/chat/completions", body=big)[0] == 413  # refused before routing: still counted
        assert get(url, "/v1/models", key=None)[0] == 401
        assert get(url, "/no/such/path")[0] == 404
        assert get(url, "/health", key=None)[0] == 200

        m = scrape(url)
        assert http_counts(m) == {
            ("/v1/chat/completions", "POST", "200"): 2, ("/v1/chat/completions", "POST", "400"): 1,
            ("/v1/chat/completions", "POST", "413"): 1, ("/v1/completions", "POST", "200"): 2,
            ("/v1/models", "GET", "401"): 1, ("none", "GET", "404"): 1, ("/health", "GET", "200"): 1}
        tiny = {"model_name": "tiny"}
        assert value(m, "stratos_prompt_tokens_total", **tiny) == sum(u.prompt_tokens for u in usages) > 0
        assert value(m, "stratos_generation_tokens_total", **tiny) == sum(u.completion_tokens for u in usages) > 0
        for hist in ("stratos_time_to_first_token_seconds", "stratos_e2e_request_latency_seconds"):
            assert value(m, f"{hist}_count", **tiny) == 4  # one per generating request, streamed or not
            buckets = [s for s in m[hist] if s.name == f"{hist}_bucket"]
            counts = [s.value for s in buckets]
            assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf" and counts[-1] == 4
        ttft, e2e = (value(m, f"{h}_sum", **tiny) for h in ("stratos_time_to_first_token_seconds",
                                                            "stratos_e2e_request_latency_seconds"))
        assert 0 < ttft < e2e
        assert value(m, "stratos_num_requests_running", **tiny) == 0
        assert value(m, "stratos_num_requests_waiting", **tiny) == 0
        assert http_counts(scrape(url))[("/metrics", "GET", "200")] == 1  # the first scrape, counted once answered


def test_metrics_need_the_key_and_health_does_not(onnx_engine):
    with running(onnx_engine, ServeSettings(port=0, api_key=KEY)) as url:
        status, _, body = get(url, "/metrics", key=None)
        assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
        assert get(url, "/metrics", key="wrong")[0] == 401
        assert get(url, "/health", key=None)[0] == 200
        assert http_counts(scrape(url)) == {("/metrics", "GET", "401"): 2, ("/health", "GET", "200"): 1}
    with running(onnx_engine, ServeSettings(port=0)) as url:  # no key configured: open, like every route
        assert get(url, "/metrics", key=None)[0] == 200


def test_each_server_counts_only_its_own_requests(onnx_engine):
    with running(onnx_engine, ServeSettings(port=0)) as a:
        OpenAI(base_url=a, api_key="none", max_retries=0).completions.create(model="tiny", prompt="Hand: 1m",
                                                                             max_tokens=3, temperature=0)
        with running(onnx_engine, ServeSettings(port=0)) as b:
            fresh = scrape(b)
            assert http_counts(fresh) == {}
            assert value(fresh, "stratos_generation_tokens_total", model_name="tiny") == 0
        assert value(scrape(a), "stratos_generation_tokens_total", model_name="tiny") == 3


class SlowEngine(OnnxEngine):
    """10 ms per decode step: a stream that holds the only slot while another request queues."""

    def _step(self, token, state):
        time.sleep(0.01)
        return super()._step(token, state)


def test_queue_gauges_and_an_abandoned_stream(tiny_export):
    settings = ServeSettings(port=0, max_concurrency=1, max_queue=4, max_tokens=512)
    with running(SlowEngine(tiny_export["onnx"]), settings) as url:
        u = urllib.parse.urlparse(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        stream = {"model": "tiny", "prompt": "Hand: 1m", "max_tokens": 240, "temperature": 0, "stream": True}
        conn.request("POST", "/v1/completions", body=json.dumps(stream), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.readline().startswith(b"data: ")  # holding the only slot
        queued: list = []
        t = threading.Thread(target=lambda: queued.append(OpenAI(base_url=url, api_key="none", max_retries=0).
                             completions.create(model="tiny", prompt="Hand: 2m", max_tokens=2, temperature=0)))
        t.start()

        def gauges() -> tuple[float, float]:
            m = scrape(url)
            return (value(m, "stratos_num_requests_running", model_name="tiny"),
                    value(m, "stratos_num_requests_waiting", model_name="tiny"))

        deadline = time.time() + 10
        while gauges() != (1, 1) and time.time() < deadline:
            time.sleep(0.02)
        assert gauges() == (1, 1)
        conn.close()  # the client walks away mid-stream: the queued request gets the slot
        t.join(timeout=30)
        assert queued and queued[0].usage.completion_tokens == 2
        tiny = {"model_name": "tiny"}

        def settled() -> bool:  # slots back, and the abandoned stream's thread stopped at its next token
            m = scrape(url)
            return gauges() == (0, 0) and value(m, "stratos_time_to_first_token_seconds_count", **tiny) == 2

        deadline = time.time() + 10
        while not settled() and time.time() < deadline:
            time.sleep(0.02)
        assert gauges() == (0, 0)
        m = scrape(url)
        assert value(m, "stratos_time_to_first_token_seconds_count", **tiny) == 2
        assert value(m, "stratos_e2e_request_latency_seconds_count", **tiny) == 1  # the abandoned stream is not
        assert 2 < value(m, "stratos_generation_tokens_total", **tiny) < 240 + 2  # its computed tokens are


class BrokenEngine(OnnxEngine):
    """Fails at prefill: an error no handler expects, answered 500 by Starlette outside the app's middleware."""

    def _start(self, prompt_ids):
        raise RuntimeError("broken on purpose")


def test_an_internal_error_is_counted_as_500(tiny_export):
    with running(BrokenEngine(tiny_export["onnx"]), ServeSettings(port=0)) as url:
        body = json.dumps({"model": "tiny", "prompt": "Hand: 1m", "max_tokens": 3}).encode()
        status, _, text = get(url, "/v1/completions", body=body)
        assert status == 500 and json.loads(text)["error"]["type"] == "server_error"
        m = scrape(url)
        assert http_counts(m) == {("/v1/completions", "POST", "500"): 1}
        assert value(m, "stratos_e2e_request_latency_seconds_count", model_name="tiny") == 0
