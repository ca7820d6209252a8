"""Resumable, content-addressed on-disk cache of API responses (any fsspec filesystem).

Layout: one JSON file per request,

    <root>/openai/<key[:2]>/<key>.json     key = sha256(canonical JSON of the request body)

The key covers everything that changes the answer (model, messages, max_tokens, temperature,
logprobs, top_logprobs, seed) and nothing that does not (base URL, API key, timeouts), so the
same request to a moved server is still a hit and no secret ever reaches a file name or body.

Why one file per request and not an append-only JSONL: object stores (s3, gcs) have no append,
and a JSONL appended from several threads or processes needs a lock to stay line-atomic. A file
per request is written to a temporary name and renamed (`stratos.artifacts.write_json`), so a run
killed mid-write leaves either the whole file or none of it; a second run (or a second process
working on the same prompts) simply finds it. The cost is one small file per call: at a few
hundred bytes each, 100k calls are ~50 MB in 256 fan-out folders.

Only successful responses are stored. Failures are not, so the next run retries them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from stratos.artifacts import join, read_json, write_json

log = logging.getLogger(__name__)

# Bump when the stored response format changes; old entries then stop matching (and are refetched).
CACHE_VERSION = 1


def request_key(request: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of `request` (sorted keys, no whitespace, UTF-8)."""
    blob = json.dumps({"cache_version": CACHE_VERSION, **request}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """get/put of JSON responses keyed by request body, under `root` (a local path or fsspec URL)."""

    def __init__(self, root: str, namespace: str = "openai") -> None:
        self.root = join(root, namespace)

    def url(self, key: str) -> str:
        # Two-hex-digit fan-out keeps directories small (256 of them) for filesystems that list slowly.
        return join(self.root, key[:2], f"{key}.json")

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response for `key`, or None (absent, or unreadable: treated as a miss and refetched)."""
        try:
            entry = read_json(self.url(key))
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as e:  # truncated by a non-atomic filesystem, or unreadable
            log.warning("cache entry %s unreadable (%s); refetching", key[:12], type(e).__name__)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "response" not in entry:
            return None
        return entry["response"]

    def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> str:
        """Store `response`; the request body is kept beside it for audit (it holds no credentials)."""
        entry = {"key": key, "request": request, "response": response, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        return write_json(self.url(key), entry)
