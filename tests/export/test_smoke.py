"""The launch-and-ask smoke test (what deploy=vllm runs when vLLM is installed), on Stratos' own server."""

from __future__ import annotations

import socket
import sys

from stratos.export.smoke import smoke_test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_smoke_ok_against_a_real_server(tiny_export):
    port = _free_port()
    argv = [sys.executable, "-m", "stratos.serve", "--model", tiny_export["onnx"], "--port", str(port)]
    r = smoke_test(argv, f"http://127.0.0.1:{port}/v1", "tiny", timeout_s=120, env={"STRATOS_API_KEY": "k"})
    assert r["ran"] and r["ok"], r
    assert r["ready_s"] > 0 and isinstance(r["text"], str) and r["exit_code"] == 0  # stopped by SIGTERM, drained


def test_smoke_reports_a_dead_command():
    r = smoke_test([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], "http://127.0.0.1:9/v1", "m",
                   timeout_s=30)
    assert r["ran"] and not r["ok"] and "code 3" in r["error"] and "boom" in r["log_tail"]


def test_smoke_reports_a_wrong_model_name(tiny_export):
    port = _free_port()
    argv = [sys.executable, "-m", "stratos.serve", "--model", tiny_export["onnx"], "--port", str(port)]
    r = smoke_test(argv, f"http://127.0.0.1:{port}/v1", "not-served", timeout_s=120)
    assert r["ran"] and not r["ok"] and "404" in r["error"]
