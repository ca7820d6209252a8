"""Server settings: limits, auth, binding and the model path, checked at start-up (bad values -> UserError).

Kept free of heavy imports, so `python -m stratos.serve` rejects bad arguments in well under a second.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from stratos.errors import UserError, bad_value


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"  # loopback by default: exposing a model is an explicit choice
    port: int = 8000  # 0 => any free port (printed at start-up)
    api_key: str | None = None  # the key itself (read from an env var by the callers); None => no auth
    max_tokens: int = 1024  # per-request cap on generated tokens (and default for chat)
    max_concurrency: int = 4  # requests generating at once
    max_queue: int = 64  # requests allowed to wait for a slot; beyond => 429
    max_body_bytes: int = 1 << 20
    max_n: int = 8
    graceful_timeout_s: float = 30.0  # SIGTERM/SIGINT: in-flight requests get this long to finish
    log_level: str = "warning"

    def validate(self) -> "ServeSettings":
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            if self.host != "localhost":
                raise bad_value("host", self.host, "an IP address such as 127.0.0.1, or localhost") from None
        checks = [("port", 0 <= self.port <= 65535, "0..65535 (0 = any free port)"),
                  ("max_tokens", self.max_tokens >= 1, "an integer >= 1"),
                  ("max_concurrency", self.max_concurrency >= 1, "an integer >= 1"),
                  ("max_queue", self.max_queue >= 0, "an integer >= 0"),
                  ("max_body_bytes", self.max_body_bytes >= 1024, "an integer >= 1024"),
                  ("max_n", 1 <= self.max_n <= 128, "1..128"),
                  ("graceful_timeout_s", self.graceful_timeout_s >= 0, "seconds >= 0")]
        for key, ok, allowed in checks:
            if not ok:
                raise bad_value(key, getattr(self, key), allowed)
        return self


def api_key_from_env(var: str | None) -> str | None:
    """The API key held by environment variable `var` (None when unset or empty: no auth)."""
    if not var:
        return None
    return os.environ.get(var) or None


def resolve_model_dir(path: str, backend: str) -> tuple[str, str]:
    """(directory, backend) for `path`: an ONNX export dir, an HF checkpoint, or an export stage dir."""
    if backend not in ("auto", "onnx", "torch"):
        raise UserError(f"invalid value for 'backend': {backend!r} (allowed: auto, onnx, torch)")
    if not os.path.isdir(path):
        raise UserError(f"invalid value for 'model': {path!r} (allowed: an existing model directory)")
    candidates = {"onnx": [path, os.path.join(path, "onnx")], "torch": [path, os.path.join(path, "hf")]}
    has = {"onnx": lambda d: os.path.exists(os.path.join(d, "stratos_onnx.json")),
           "torch": lambda d: os.path.exists(os.path.join(d, "config.json")) and any(
               f.endswith((".safetensors", ".bin")) for f in os.listdir(d))}
    for b in (["onnx", "torch"] if backend == "auto" else [backend]):
        for d in candidates[b]:
            if os.path.isdir(d) and has[b](d):
                return d, b
    wanted = "an ONNX export (stratos_onnx.json) or an HF checkpoint" if backend == "auto" else (
        "an ONNX export with stratos_onnx.json" if backend == "onnx" else "an HF checkpoint with weights")
    raise UserError(f"invalid value for 'model': {path!r} holds no model for backend {backend} (allowed: {wanted})")
