"""A black-box teacher behind any OpenAI-compatible chat-completions endpoint (vLLM, TGI, OpenAI, ...).

    teacher = OpenAITeacher(name="big", kind="openai", base_url="http://host:8000/v1", model="qwen",
                            api_key_env="MY_KEY", concurrency=8, top_logprobs=5)
    outs = teacher.generate(prompts, cache_dir="outputs/cache")   # list[TeacherOutput], same order

What it offers (`capabilities`): "text" always; "logprobs" when a one-token probe request came back
with top-k log-probabilities (probed lazily, once); "score" when the server also returns the log-probs
of GIVEN token ids (legacy completions with echo, or vLLM's prompt_logprobs: `scoring`, `score`, in
stratos/models/openai_scoring.py; on-policy KD's served scorer). `generate` asks for top-k logprobs
only when `top_logprobs > 0` and the server offers them.

Reliability, per request (one prompt):
  * bounded concurrency: a thread pool of `concurrency` workers, each owning one request at a time
    (including its back-off sleeps), so at most `concurrency` requests are ever in flight;
  * retries on 408/409/429/5xx, timeouts, dropped connections and malformed bodies (bad JSON,
    missing `choices`), up to `max_retries` times, after the jittered back-off or the server's
    Retry-After (stratos/models/retry_policy.py). Other 4xx (400, 401, 404, 422) are final;
  * an item that still fails comes back with `error` set and `text == ""`, never silently empty;
    if every item of a call fails (server down, wrong key), `UserError` names the base URL;
  * a content-addressed response cache (stratos/models/http_cache.py): a killed run re-run with the
    same cache directory repeats no successful call.

The API key is read from the environment variable named by `api_key_env`; only that name is
configured or saved. The key is kept inside the HTTP client, and any error text the server sends
back is scrubbed of it before it reaches a log line, an output or an exception.

The HTTP protocol (URL joining, auth header, status errors, Retry-After headers) is the official
`openai` client's; its own retry loop is switched off (max_retries=0) because it does not retry
malformed bodies and hides the attempt count, and a single policy here covers every failure kind.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stratos.config import OpenAITeacherConfig
from stratos.errors import UserError, bad_value
from stratos.models.chat_response import (  # noqa: F401  (MalformedResponse, TeacherOutput: re-exported)
    MalformedResponse, NoContent, TeacherOutput, parse_chat, teacher_output)
from stratos.models.http_cache import ResponseCache, request_key
from stratos.models.openai_scoring import NotScored, ScoredSequence, ScoreStats, ScoreSupport, probe_scoring, score
from stratos.models.retry_policy import MAX_RETRY_AFTER_S, backoff_delay, parse_retry_after  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

PROBE_PROMPT = "Reply with the single word OK."




@dataclass
class _CallResult:
    response: dict[str, Any] | None
    error: str | None = None
    status: int | None = None  # HTTP status of the last failed attempt, if any
    attempts: int = 0




def _safe_url(url: str) -> str:
    """`url` without any user:password@ part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_D = OpenAITeacherConfig  # the one place the defaults live


class OpenAITeacher:
    """Text (+ top-k logprobs) from an OpenAI-compatible endpoint; see the module docstring."""

    kind = "openai"

    def __init__(
        self,
        name: str,
        base_url: str | None = None,
        model: str | None = None,
        api_key_env: str = _D.api_key_env,
        max_new_tokens: int = _D.max_new_tokens,
        temperature: float = _D.temperature,
        top_logprobs: int = _D.top_logprobs,
        concurrency: int = _D.concurrency,
        max_retries: int = _D.max_retries,
        timeout_s: float = _D.timeout_s,
        backoff_base_s: float = _D.backoff_base_s,
        backoff_max_s: float = _D.backoff_max_s,
        cache_dir: str | None = None,  # the config's default is ${paths.cache}; built directly: no cache
        progress_every_s: float = _D.progress_every_s,
        score_api: str = _D.score_api,
        score_top_logprobs: int = _D.score_top_logprobs,
        **_: object,  # kind, card, name_or_path, dtype: the shared TeacherConfig fields this backend ignores
    ) -> None:
        for key, ok, value, allowed in (
            ("base_url", bool(base_url) and str(base_url).startswith(("http://", "https://")), base_url,
             "an http(s) URL such as http://127.0.0.1:8000/v1"),
            ("model", bool(model), model, "the model name the server serves"),
            ("max_new_tokens", int(max_new_tokens) > 0, max_new_tokens, "an integer > 0"),
            ("temperature", float(temperature) >= 0, temperature, "a number >= 0"),
            ("top_logprobs", int(top_logprobs) >= 0, top_logprobs, "an integer >= 0 (0 = text only)"),
            ("concurrency", int(concurrency) >= 1, concurrency, "an integer >= 1"),
            ("max_retries", int(max_retries) >= 0, max_retries, "an integer >= 0"),
            ("timeout_s", float(timeout_s) > 0, timeout_s, "seconds > 0"),
            ("backoff_base_s", float(backoff_base_s) >= 0, backoff_base_s, "seconds >= 0"),
            ("backoff_max_s", float(backoff_max_s) >= float(backoff_base_s), backoff_max_s,
             "seconds >= teacher.backoff_base_s"),
            ("score_api", str(score_api) in ("auto", "echo", "prompt_logprobs"), score_api,
             "auto, echo, prompt_logprobs"),
            ("score_top_logprobs", int(score_top_logprobs) >= 1, score_top_logprobs, "an integer >= 1"),
        ):
            if not ok:
                raise bad_value(f"teacher.{key}", value, allowed)
        try:
            import openai
        except ImportError as e:  # pragma: no cover - openai ships in the test/serve extras
            raise UserError("teacher.kind=openai needs the 'openai' package: pip install 'stratos[serve]'") from e

        self.name = name
        self.base_url = str(base_url).rstrip("/")
        # not `self.model`: other code reads `teacher.model` as the torch module of a white-box teacher
        self.model_name = str(model)
        self.api_key_env = api_key_env
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.top_logprobs = int(top_logprobs)
        self.concurrency = int(concurrency)
        self.max_retries = int(max_retries)
        self.timeout_s = float(timeout_s)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.cache_dir = cache_dir
        self.progress_every_s = float(progress_every_s)
        self.score_api = str(score_api)
        self.score_top_logprobs = int(score_top_logprobs)
        self.url = _safe_url(self.base_url)

        secret = os.environ.get(api_key_env, "") if api_key_env else ""
        if api_key_env and not secret:
            log.warning("teacher %s: environment variable %r is not set; calling %s without an API key",
                        name, api_key_env, self.url)
        # Kept only for scrubbing server error text; never logged or stored. vLLM-style servers accept any
        # bearer token, so "EMPTY" stands in when no key is configured.
        self._secrets = tuple(s for s in (secret, self.base_url if self.base_url != self.url else "") if s)
        self._openai = openai
        self._client = openai.OpenAI(base_url=self.base_url, api_key=secret or "EMPTY", max_retries=0,
                                     timeout=self.timeout_s)
        self._rng = random.Random()
        self._lock = threading.Lock()  # stats and rng
        self._probe_lock = threading.Lock()  # separate: the probe's own requests take self._lock
        self._capabilities: frozenset[str] | None = None
        self._scoring: ScoreSupport | None = None
        self.score_stats = ScoreStats()
        self._warned_no_logprobs = False
        self.stats = {"requests": 0, "retries": 0, "ok": 0, "cached": 0, "failed": 0,
                      "prompt_tokens": 0, "completion_tokens": 0}

    def __repr__(self) -> str:
        return f"OpenAITeacher(name={self.name!r}, model={self.model_name!r}, base_url={self.url!r})"

    # ------------------------------------------------------------------ capabilities
    @property
    def capabilities(self) -> frozenset[str]:
        """{"text"} [+ "logprobs"], from one probe request (made on first access). Whether the server scores
        given tokens is `scoring`, probed apart and only when on-policy KD asks: a run that never scores sends no
        scoring requests."""
        with self._probe_lock:
            if self._capabilities is None:
                self._capabilities = self._probe()
        return self._capabilities

    @property
    def scoring(self) -> ScoreSupport:
        """How the server scores given token ids (`score_api`), from probe requests made on first access."""
        with self._probe_lock:
            if self._scoring is None:
                self._scoring = probe_scoring(self)
            return self._scoring

    def score(self, seqs: list[list[int]]) -> list[ScoredSequence | None]:
        """The server's log-probs of each token-id sequence at every position (openai_scoring.score)."""
        return score(self, seqs)

    def _probe(self) -> frozenset[str]:
        req = self._request(PROBE_PROMPT, max_tokens=1, temperature=0.0, top_logprobs=max(1, self.top_logprobs))
        res = self._call(req)
        if res.response is None and res.status in (400, 422):  # the server rejects the logprobs parameters
            res = self._call(self._request(PROBE_PROMPT, max_tokens=1, temperature=0.0, top_logprobs=0))
        if res.response is None:
            raise UserError(self._fatal(f"probe request to {self.url} failed", res))
        has = any(res.response["top_logprobs"] or [])
        log.info("teacher %s at %s: capabilities text%s", self.name, self.url, ", logprobs" if has else "")
        return frozenset({"text", "logprobs"} if has else {"text"})

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int | None = None,
        cache_dir: str | None = None,
        temperature: float | None = None,
        sample: int = 0,
    ) -> list[TeacherOutput]:
        """One chat completion per prompt (user message = prompt), in prompt order.

        `sample` > 0 asks for another, independent draw of the same prompt (sent as the request
        `seed`, and part of the cache key): rejection sampling uses it with `temperature` > 0.
        `cache_dir` (else the configured `cache_dir`; None = no cache) makes the call resumable.
        """
        if not prompts:
            return []
        n_tok = int(max_new_tokens or self.max_new_tokens)
        temp = self.temperature if temperature is None else float(temperature)
        k = 0
        if self.top_logprobs > 0:
            if "logprobs" in self.capabilities:
                k = self.top_logprobs
            elif not self._warned_no_logprobs:
                self._warned_no_logprobs = True
                log.warning("teacher %s: %s returns no logprobs; asking for text only", self.name, self.url)
        root = cache_dir or self.cache_dir
        cache = ResponseCache(root) if root else None

        reqs = [self._request(p, max_tokens=n_tok, temperature=temp, top_logprobs=k, seed=sample or None)
                for p in prompts]
        keys = [request_key(r) for r in reqs]
        todo = dict(zip(keys, reqs))  # identical prompts are asked once
        done: dict[str, TeacherOutput] = {}
        progress = _Progress(self.name, len(todo), self.progress_every_s)
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo)), thread_name_prefix="openai-teacher")
        try:
            futures = {pool.submit(self._one, key, req, cache): key for key, req in todo.items()}
            for fut in as_completed(futures):
                out = done[futures[fut]] = fut.result()
                progress.update(out)
        finally:
            # On an exception or Ctrl-C, drop queued prompts; in-flight ones finish (and are cached).
            pool.shutdown(wait=True, cancel_futures=True)
        progress.finish()

        outs = [dataclasses.replace(done[key]) for key in keys]
        failed = [o for o in outs if o.error is not None]
        if len(failed) == len(outs):
            raise UserError(self._fatal(f"all {len(todo)} requests to {self.url} failed",
                                        _CallResult(None, failed[-1].error)))
        if failed:
            log.warning("teacher %s: %d of %d requests failed after retries (first: %s)", self.name,
                        len(failed), len(outs), failed[0].error)
        return outs

    def _request(self, prompt: str, *, max_tokens: int, temperature: float, top_logprobs: int,
                 seed: int | None = None) -> dict[str, Any]:
        """The request body: exactly what is sent and what the cache key hashes."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompts must be strings, got {type(prompt).__name__}")
        req: dict[str, Any] = {"model": self.model_name, "messages": [{"role": "user", "content": prompt}],
                               "max_tokens": max_tokens, "temperature": temperature}
        if top_logprobs > 0:
            req.update(logprobs=True, top_logprobs=top_logprobs)
        if seed is not None:
            req["seed"] = int(seed)
        return req

    def _one(self, key: str, req: dict[str, Any], cache: ResponseCache | None) -> TeacherOutput:
        """Cache lookup, else the call with retries, then the cache write. Runs on a pool thread."""
        if cache is not None:
            hit = cache.get(key)
            if hit is not None:
                self._count(cached=1)
                return teacher_output(hit, cached=True, attempts=0)
        res = self._call(req)
        if res.response is None:
            self._count(failed=1)
            return TeacherOutput(text="", error=res.error, attempts=res.attempts)
        usage = res.response.get("usage") or {}
        self._count(ok=1, prompt_tokens=usage.get("prompt_tokens", 0),
                    completion_tokens=usage.get("completion_tokens", 0))
        if cache is not None:
            try:
                cache.put(key, req, res.response)
            except OSError as e:  # the answer is still good; only resumability is lost for it
                log.warning("teacher %s: cache write failed (%s)", self.name, _one_line(str(e)))
        return teacher_output(res.response, cached=False, attempts=res.attempts)

    def _call(self, req: dict[str, Any], send=None) -> _CallResult:
        """POST one request with the retry policy; never raises for server-side failures. `send(req)` posts and
        parses (default: a chat completion, parsed by `parse_chat`; openai_scoring sends legacy completions)."""
        last = _CallResult(None)
        for attempt in range(self.max_retries + 1):
            self._count(requests=1, retries=1 if attempt else 0)
            try:
                out = (send or self._chat)(req)
                return _CallResult(out, attempts=attempt + 1)
            except Exception as e:  # noqa: BLE001 - _classify re-raises anything that is not a server failure
                retryable, msg, status, retry_after = self._classify(e)
            last = _CallResult(None, msg, status, attempt + 1)
            if not retryable or attempt == self.max_retries:
                break
            with self._lock:  # random.Random is not safe to share across threads unlocked
                delay = backoff_delay(attempt, base_s=self.backoff_base_s, cap_s=self.backoff_max_s,
                                      retry_after=retry_after, rng=self._rng)
            log.debug("teacher %s: %s; retry %d/%d in %.2fs", self.name, msg, attempt + 1, self.max_retries, delay)
            time.sleep(delay)
        return last

    def _chat(self, req: dict[str, Any]) -> dict[str, Any]:
        return parse_chat(self._client.chat.completions.create(**req))

    def _classify(self, e: Exception) -> tuple[bool, str, int | None, float | None]:
        """(retryable, scrubbed one-line message, HTTP status, Retry-After seconds) of a failed attempt."""
        oa = self._openai
        if isinstance(e, oa.APITimeoutError):  # subclass of APIConnectionError: test it first
            return True, self._scrub(f"timeout after {self.timeout_s:g}s"), None, None
        if isinstance(e, oa.APIConnectionError):
            cause = e.__cause__ or e
            return True, self._scrub(f"connection error: {type(cause).__name__}: {cause}"), None, None
        if isinstance(e, oa.APIStatusError):
            code = e.status_code
            retryable = code in (408, 409, 429) or code >= 500
            text = re.sub(r"^Error code: \d+ - ", "", str(e.message))  # the client's prefix repeats the code
            return retryable, self._scrub(f"HTTP {code}: {text}"), code, parse_retry_after(e.response.headers)
        if isinstance(e, (NoContent, NotScored)):
            return False, self._scrub(str(e)), None, None
        if isinstance(e, (ValueError, oa.APIResponseValidationError)):  # bad JSON, MalformedResponse
            return True, self._scrub(f"malformed response: {type(e).__name__}: {e}"), None, None
        raise e

    def _scrub(self, text: str) -> str:
        text = _one_line(text)
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _fatal(self, what: str, res: _CallResult) -> str:
        hint = ""
        if res.status in (401, 403) or (res.error or "").startswith(("HTTP 401", "HTTP 403")):
            hint = f" (is environment variable {self.api_key_env!r} set to a valid key?)"
        return f"teacher '{self.name}': {what} after up to {self.max_retries} retries: {res.error}{hint}"

    def _count(self, **inc: int) -> None:
        with self._lock:
            for k, v in inc.items():
                self.stats[k] += int(v)




class _Progress:
    """A log line every `every_s` seconds while a long batch runs, and a summary at the end."""

    def __init__(self, name: str, total: int, every_s: float) -> None:
        self.name, self.total, self.every_s = name, total, every_s
        self.n = self.cached = self.failed = 0
        self.t0 = self.last = time.monotonic()

    def update(self, out: TeacherOutput) -> None:
        self.n += 1
        self.cached += out.cached
        self.failed += out.error is not None
        now = time.monotonic()
        if now - self.last >= self.every_s and self.n < self.total:
            self.last = now
            rate = self.n / max(now - self.t0, 1e-9)
            log.info("teacher %s: %d/%d done (cached %d, failed %d), %.1f/s, eta %.0fs", self.name, self.n,
                     self.total, self.cached, self.failed, rate, (self.total - self.n) / max(rate, 1e-9))

    def finish(self) -> None:
        log.info("teacher %s: %d prompts in %.1fs: %d called, %d cached, %d failed", self.name, self.total,
                 time.monotonic() - self.t0, self.n - self.cached - self.failed, self.cached, self.failed)
