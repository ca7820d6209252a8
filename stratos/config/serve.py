"""`serve` group (owner: stratos/serve/): the server's settings, used as is by `python -m stratos.serve`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

from stratos.config.choices import Backend
from stratos.errors import bad_value


@dataclass
class ServeSettings:
    enabled: bool = False  # pipeline only: serve the export stage's model once the run finishes
    host: str = "127.0.0.1"  # loopback by default: exposing a model is an explicit choice
    port: int = 8000  # 0 => any free port (printed at start-up)
    backend: Backend = Backend.auto
    api_key_env: str = "STRATOS_API_KEY"  # env var holding the API key; unset or empty => no auth
    # the key itself, filled from `api_key_env` at start-up (never set in a config: configs are written
    # to run directories and command lines are visible in `ps`); None => no auth
    api_key: Optional[str] = None
    max_tokens: int = 1024  # per-request cap on generated tokens (and default for chat)
    max_concurrency: int = 4  # requests generating at once
    max_queue: int = 64  # requests allowed to wait for a slot; beyond => 429
    max_body_bytes: int = 1 << 20
    max_n: int = 8
    max_logprobs: int = 20  # most top-k log-probs per token a request may ask for (vLLM's --max-logprobs)
    graceful_timeout_s: float = 30.0  # SIGTERM/SIGINT: in-flight requests get this long to finish
    log_level: str = "warning"
    threads: int = 1  # ONNX Runtime / torch intra-op threads per request

    def validate(self, prefix: str = "") -> "ServeSettings":
        """Range checks; `prefix` names the keys as the user wrote them ("serve." from a run's config, "" for
        `python -m stratos.serve`, whose flags carry the bare names)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            if self.host != "localhost":
                raise bad_value(prefix + "host", self.host, "an IP address such as 127.0.0.1, or localhost") from None
        checks = [("port", 0 <= self.port <= 65535, "0..65535 (0 = any free port)"),
                  ("max_tokens", self.max_tokens >= 1, "an integer >= 1"),
                  ("max_concurrency", self.max_concurrency >= 1, "an integer >= 1"),
                  ("max_queue", self.max_queue >= 0, "an integer >= 0"),
                  ("max_body_bytes", self.max_body_bytes >= 1024, "an integer >= 1024"),
                  ("max_n", 1 <= self.max_n <= 128, "1..128"),
                  ("max_logprobs", self.max_logprobs >= 0, "an integer >= 0"),
                  ("graceful_timeout_s", self.graceful_timeout_s >= 0, "seconds >= 0"),
                  ("threads", self.threads >= 1, "an integer >= 1")]
        for key, ok, allowed in checks:
            if not ok:
                raise bad_value(prefix + key, getattr(self, key), allowed)
        return self
