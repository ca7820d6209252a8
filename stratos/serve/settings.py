"""Server settings: limits, auth and binding, checked once at start-up (bad values -> UserError)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from stratos.errors import bad_value


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
