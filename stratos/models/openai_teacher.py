"""A black-box teacher behind any OpenAI-compatible chat-completions endpoint (vLLM, TGI, OpenAI, ...).

    teacher = OpenAITeacher(name="big", kind="openai", base_url="http://host:8000/v1", model="qwen",
                            api_key_env="MY_KEY", concurrency=8, top_logprobs=5)
    outs = teacher.generate(prompts, cache_dir="outputs/cache")   # list[TeacherOutput], same order

What it offers (`capabilities`): "text" always; "logprobs" when a one-token probe request came back
with top-k log-probabilities (probed lazily, once). `generate` asks for top-k logprobs only when
`top_logprobs > 0` and the server offers them.

Reliability, per request (one prompt):
  * bounded concurrency: a thread pool of `concurrency` workers, each owning one request at a time
    (including its back-off sleeps), so at most `concurrency` requests are ever in flight;
  * retries on 408/409/429/5xx, timeouts, dropped connections and malformed bodies (bad JSON,
    missing `choices`), up to `max_retries` times. The delay before retry r (r = 0, 1, ...) is
        Retry-After (or retry-after-ms) when the server sent one:  d = RA * (1 + 0.1 U),  U ~ U(0, 1)
        otherwise "equal jitter" exponential back-off:              c = min(cap, base * 2^r),
                                                                    d = c / 2 + (c / 2) U
    The jitter spreads retries of many threads that failed together (a 429 burst) over time; the
    Retry-After form never retries earlier than asked. Other 4xx (400, 401, 404, 422) are final;
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
import email.utils
import json
import logging
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from stratos.config import OpenAITeacherConfig
from stratos.errors import UserError, bad_value
from stratos.models.http_cache import ResponseCache, request_key

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 300.0  # a server asking for longer is down for our purposes; max_retries still bounds the wait
PROBE_PROMPT = "Reply with the single word OK."


@dataclass
class TeacherOutput:
    """One teacher answer. With logprobs, `tokens[i]` = (token, logprob, bytes) of generated token i and
    `top_logprobs[i]` = its top-k alternatives as (token, logprob, bytes) (bytes None if not sent)."""

    text: str
    top_logprobs: list[list[tuple[str, float, list[int] | None]]] | None = None
    tokens: list[tuple[str, float, list[int] | None]] | None = None
    cached: bool = False  # served from the on-disk cache (no HTTP call)
    error: str | None = None  # set when the request failed after all retries (then text == "")
    finish_reason: str | None = None  # "stop", "length" (hit max_new_tokens), ...
    usage: dict[str, int] | None = None  # prompt_tokens, completion_tokens as reported by the server
    attempts: int = 0  # HTTP requests made for this output (0 when cached)


class MalformedResponse(ValueError):
    """The server answered 2xx but the body is not a usable chat completion (retryable)."""


class NoContent(ValueError):
    """A well-formed completion without message text (e.g. a refusal); final, not retried."""


@dataclass
class _CallResult:
    response: dict[str, Any] | None
    error: str | None = None
    status: int | None = None  # HTTP status of the last failed attempt, if any
    attempts: int = 0


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or HTTP date), else None."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:  # HTTP-date form, e.g. "Wed, 21 Oct 2015 07:28:00 GMT"
        when = email.utils.parsedate_to_datetime(ra).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff_delay(retry: int, *, base_s: float, cap_s: float, retry_after: float | None,
                  rng: random.Random) -> float:
    """Seconds to sleep before retry number `retry` (0-based); formulas in the module docstring."""
    u = rng.random()
    if retry_after is not None:
        ra = min(retry_after, MAX_RETRY_AFTER_S)
        return ra * (1.0 + 0.1 * u)
    c = min(cap_s, base_s * (2.0 ** retry))
    return c / 2.0 + (c / 2.0) * u


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
        self._warned_no_logprobs = False
        self.stats = {"requests": 0, "retries": 0, "ok": 0, "cached": 0, "failed": 0,
                      "prompt_tokens": 0, "completion_tokens": 0}

    def __repr__(self) -> str:
        return f"OpenAITeacher(name={self.name!r}, model={self.model_name!r}, base_url={self.url!r})"

    # ------------------------------------------------------------------ capabilities
    @property
    def capabilities(self) -> frozenset[str]:
        """{"text"} or {"text", "logprobs"}, from one probe request (made on first access)."""
        with self._probe_lock:
            if self._capabilities is None:
                self._capabilities = self._probe()
            return self._capabilities

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
                return _output(hit, cached=True, attempts=0)
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
        return _output(res.response, cached=False, attempts=res.attempts)

    def _call(self, req: dict[str, Any]) -> _CallResult:
        """POST one chat completion with the retry policy; never raises for server-side failures."""
        last = _CallResult(None)
        for attempt in range(self.max_retries + 1):
            self._count(requests=1, retries=1 if attempt else 0)
            try:
                completion = self._client.chat.completions.create(**req)
                return _CallResult(_parse(completion), attempts=attempt + 1)
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
        if isinstance(e, NoContent):
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


def _parse(completion: Any) -> dict[str, Any]:
    """The cached response form: {text, top_logprobs, tokens, finish_reason, usage} of choice 0."""
    try:
        choice = completion.choices[0]
        message = choice.message
        content = message.content
        if content is not None and not isinstance(content, str):
            raise TypeError(f"content is {type(content).__name__}")
        top = tokens = None
        lp = getattr(choice, "logprobs", None)
        if lp is not None and lp.content:
            top = [[_entry(t) for t in (tok.top_logprobs or [])] for tok in lp.content]
            tokens = [_entry(tok) for tok in lp.content]
        usage = None
        if getattr(completion, "usage", None) is not None:
            u = completion.usage
            usage = {"prompt_tokens": int(u.prompt_tokens or 0), "completion_tokens": int(u.completion_tokens or 0)}
    except (AttributeError, IndexError, KeyError, TypeError) as e:
        raise MalformedResponse(f"not a chat completion ({type(e).__name__}: {e})") from e
    if content is None:
        refusal = getattr(message, "refusal", None)
        raise NoContent(f"completion has no text (finish_reason={choice.finish_reason!r}, refusal={refusal!r})")
    return {"text": content, "top_logprobs": top, "tokens": tokens, "finish_reason": choice.finish_reason,
            "usage": usage}


def _entry(t: Any) -> list:
    """[token, logprob, bytes or None]: the bytes identify a token exactly (text may be half a character)."""
    raw = getattr(t, "bytes", None)
    return [str(t.token), float(t.logprob), [int(b) for b in raw] if raw is not None else None]


def _triple(e: list) -> tuple[str, float, list[int] | None]:
    return str(e[0]), float(e[1]), (list(e[2]) if len(e) > 2 and e[2] is not None else None)  # older cache: pairs


def _output(resp: dict[str, Any], *, cached: bool, attempts: int) -> TeacherOutput:
    top, tokens = resp.get("top_logprobs"), resp.get("tokens")
    return TeacherOutput(
        text=resp["text"],
        top_logprobs=None if top is None else [[_triple(t) for t in tok] for tok in top],
        tokens=None if tokens is None else [_triple(t) for t in tokens],
        cached=cached,
        finish_reason=resp.get("finish_reason"),
        usage=resp.get("usage"),
        attempts=attempts,
    )


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
