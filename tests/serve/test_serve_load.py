"""A small version of `python -m benchmarks.serve_load`: bounded load with bad requests mixed in."""

from __future__ import annotations

from benchmarks.serve_load import KEY, run_load
from stratos.serve.server import running
from stratos.serve.settings import ServeSettings


def test_load_with_abuse_has_no_errors(onnx_engine):
    settings = ServeSettings(port=0, api_key=KEY, max_concurrency=2, max_queue=32, max_body_bytes=8192)
    with running(onnx_engine, settings) as url:
        res = run_load(url, "tiny", requests=40, concurrency=4, max_tokens=8, abuse_every=5, max_body=8192)
        after = run_load(url, "tiny", requests=2, concurrency=1, max_tokens=4, abuse_every=0)
    assert res["ok"] == 40 and res["errors"] == []
    assert len(res["abuse"]) == 8 and res["abuse_rejected"], res["abuse"]
    assert {a["kind"] for a in res["abuse"]} == {"oversize", "malformed", "bad_param", "bad_key"}
    assert 0 < res["p50_ms"] <= res["p95_ms"] and res["tokens_per_s"] > 0
    assert after["ok"] == 2  # still serving
