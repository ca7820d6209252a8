"""Smoke-test an OpenAI-compatible server command: start it, wait until it answers, ask once, stop it.

Used for `vllm serve` (when vLLM is installed) and tested here against `python -m stratos.serve`,
which speaks the same protocol. The server runs in its own process group, so stopping it (SIGTERM,
then SIGKILL after a grace period) also stops any workers it spawned (vLLM starts several).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


def _ready(base_url: str, api_key: str) -> bool:
    req = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _stop(proc: subprocess.Popen, grace_s: float = 30.0) -> int | None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def smoke_test(argv: list[str], base_url: str, model: str, *, timeout_s: float = 600.0,
               env: dict[str, str] | None = None, api_key: str | None = None, prompt: str = "Hello") -> dict:
    """{"ran": True, "ok": bool, "ready_s", "text" | "error", "exit_code", "log_tail"} for one launch."""
    from openai import OpenAI

    key = api_key if api_key is not None else next((v for v in (env or {}).values() if v), "none")
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            start_new_session=True)
    t0 = time.time()
    result: dict = {"ran": True, "ok": False, "command": argv}
    try:
        while not _ready(base_url, key):
            if proc.poll() is not None:
                result["error"] = f"server exited with code {proc.returncode} before answering"
                return result
            if time.time() - t0 > timeout_s:
                result["error"] = f"server not ready after {timeout_s:.0f} s"
                return result
            time.sleep(0.25)
        result["ready_s"] = round(time.time() - t0, 2)
        client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
        out = client.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0)
        result["text"] = out.choices[0].text
        result["ok"] = out.usage is not None and out.usage.completion_tokens > 0
    except Exception as e:  # the smoke result records any failure; the caller decides what it means
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        result["exit_code"] = _stop(proc)
        log.seek(0)
        result["log_tail"] = log.read()[-2000:]
        log.close()
        os.unlink(log.name)
    return result
