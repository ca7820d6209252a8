"""`python -m stratos.serve` as a real process: start-up line, API key from the env, SIGTERM drains."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest


def _start(model: str, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "stratos.serve", "--model", model, "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})})
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"server exited early: {proc.stderr.read()}")
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError("server did not announce itself")


def _get(url: str, key: str | None = None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_sigterm_drains_in_flight_stream(tiny_export):
    root = tiny_export["hf"].rsplit("/", 1)[0]
    proc, url = _start(root, "--backend", "torch", env={"STRATOS_API_KEY": "k"})
    try:
        assert _get(f"{url}/models") == 401 and _get(f"{url}/models", "k") == 200
        body = json.dumps({"model": "tiny", "prompt": "Hand: 1m", "max_tokens": 120, "n": 8, "temperature": 0,
                           "stream": True}).encode()
        req = urllib.request.Request(f"{url}/completions", data=body, headers={
            "Content-Type": "application/json", "Authorization": "Bearer k"})
        resp = urllib.request.urlopen(req, timeout=60)
        assert resp.readline().startswith(b"data: ")  # in flight: ~950 tokens of work still to do
        t_term = time.time()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(urllib.error.URLError):  # no new connections while draining
            urllib.request.urlopen(f"{url}/models", timeout=5)
        frames = [line for line in resp.read().decode().split("\n") if line.startswith("data: ")]
        assert frames[-1] == "data: [DONE]"
        chunks = [json.loads(f[6:]) for f in frames[:-1]]
        finished = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]]
        assert sorted(finished) == list(range(8))  # every choice ran to its end after SIGTERM
        assert proc.wait(timeout=60) == 0
        assert time.time() - t_term > 0.3
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_model_dir_is_one_line_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "stratos.serve", "--model", str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "invalid value for 'model'" in out.stderr


def test_bad_limit_is_one_line_exit_2(tiny_export):
    out = subprocess.run([sys.executable, "-m", "stratos.serve", "--model", tiny_export["onnx"],
                          "--max-concurrency", "0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "max_concurrency" in out.stderr
