"""A real, scriptable OpenAI chat-completions HTTP server on 127.0.0.1 for tests (not collected by pytest).

    with ChatServer(script) as srv:          # srv.url == "http://127.0.0.1:<free port>/v1"
        ...                                   # srv.log, srv.max_in_flight, srv.count(prompt)

`script(prompt, attempt, body) -> Reply` decides each answer; `attempt` counts earlier requests for
the same (prompt, seed), so "fail the first time, succeed the second" is `attempt == 0`.
Reply kinds: ok (a chat.completion, with top-k logprobs when asked and `logprobs="yes"`),
status (an HTTP error with an OpenAI error body and optional headers such as Retry-After),
malformed (200 with a body that is not JSON), nochoices (200, JSON without `choices`),
drop (close the connection without answering). `delay_s` sleeps before answering (client timeouts).

/v1/completions (scoring given tokens) answers 404 unless a `completions(body, attempt) -> Reply` script is
given; its ok replies send `Reply.body` as is (`vllm_prompt_logprobs` and `openai_echo` build canned bodies in
the two shapes servers use).
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    kind: str = "ok"  # ok | status | malformed | nochoices | drop
    text: str = ""
    status: int = 200
    message: str = "error"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: dict | None = None  # ok replies to /v1/completions: the JSON body to send


Script = Callable[[str, int, dict], Reply]


def echo(prompt: str, attempt: int, body: dict) -> Reply:
    return Reply(text=f"reply to: {prompt}")


class ChatServer:
    def __init__(self, script: Script = echo, *, logprobs: str = "yes", api_key: str | None = None,
                 block_after: int | None = None, completions: Callable[[dict, int], Reply] | None = None) -> None:
        self.script = script
        self.completions = completions
        self.logprobs = logprobs  # yes | ignore (never returns them) | reject (400 when asked)
        self.api_key = api_key  # when set, other bearer tokens get 401
        self.block_after = block_after  # after this many ok replies, hold new requests until stop()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.attempts: collections.Counter = collections.Counter()
        self.log: list[dict] = []
        self.in_flight = self.max_in_flight = self.ok_served = self.admitted = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.chat = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def prompts(self) -> list[str]:
        return [r["prompt"] for r in self.log]

    def count(self, prompt: str) -> int:
        return sum(1 for r in self.log if r["prompt"] == prompt)


def completion(text: str, k: int) -> dict:
    """A chat.completion body; with k > 0, top-k logprobs per whitespace token (the token itself first)."""
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    toks = text.split()
    if k > 0:
        choice["logprobs"] = {"content": [
            {"token": t, "logprob": -0.05, "bytes": None,
             "top_logprobs": [{"token": t, "logprob": -0.05, "bytes": None}]
             + [{"token": f"alt{j}", "logprob": -3.0 - j, "bytes": None} for j in range(1, k)]}
            for t in toks]}
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": "test",
            "choices": [choice],
            "usage": {"prompt_tokens": 7, "completion_tokens": len(toks), "total_tokens": 7 + len(toks)}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers
    disable_nagle_algorithm = True  # else headers and body, written apart, meet delayed ACKs: +40 ms per reply

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"message": message, "type": "test_error", "code": status}}
        self._send(status, json.dumps(body).encode(), headers)

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        srv: ChatServer = self.server.chat  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        scoring = self.path.rstrip("/") == "/v1/completions" and srv.completions is not None
        if self.path.rstrip("/") != "/v1/chat/completions" and not scoring:
            return self._error(404, f"no route {self.path}")
        auth = self.headers.get("Authorization", "")
        prompt = json.dumps(body["prompt"]) if scoring else body["messages"][-1]["content"]
        seed = body.get("seed", 0)
        with srv.lock:
            attempt = srv.attempts[(prompt, seed)]
            srv.attempts[(prompt, seed)] += 1
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            # counted on arrival, under the lock: two concurrent requests cannot both slip in as "the 5th"
            blocked = srv.block_after is not None and srv.admitted >= srv.block_after
            srv.admitted += not blocked
            record = {"prompt": prompt, "seed": seed, "attempt": attempt, "t": time.monotonic(), "body": body,
                      "auth": auth}
            srv.log.append(record)
        try:
            if blocked:
                srv.release.wait(60)
                self.close_connection = True
                return None
            if srv.api_key is not None and auth != f"Bearer {srv.api_key}":
                return self._error(401, "Incorrect API key provided")
            k = int(body.get("top_logprobs", 0)) if body.get("logprobs") else 0
            if k and srv.logprobs == "reject" and not scoring:
                return self._error(400, "logprobs are not supported by this server")
            if srv.logprobs == "ignore":
                k = 0
            reply = srv.completions(body, attempt) if scoring else srv.script(prompt, attempt, body)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            record["kind"] = reply.kind
            if reply.kind == "ok":
                self._send(200, json.dumps(reply.body if scoring else completion(reply.text, k)).encode())
                with srv.lock:
                    srv.ok_served += 1
            elif reply.kind == "status":
                self._error(reply.status, reply.message.replace("{auth}", auth), reply.headers)
            elif reply.kind == "malformed":
                self._send(200, b'{"id": "chatcmpl-test", "choices": [')
            elif reply.kind == "nochoices":
                self._send(200, b'{"id": "chatcmpl-test", "object": "chat.completion"}')
            elif reply.kind == "drop":
                self.close_connection = True
            else:
                raise ValueError(reply.kind)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) before we answered
            pass
        finally:
            with srv.lock:
                srv.in_flight -= 1
        return None


# ------------------------------------------------------------------ canned scoring bodies (/v1/completions)
def toy_logprobs(ids: list[int], i: int, vocab: int) -> list[float]:
    """A fixed toy teacher: log p(v | ids[:i]) over `vocab` tokens (a softmax of sin(v * (i + ids[i-1])))."""
    import math

    z = [math.sin(v * (i + ids[i - 1])) * 3.0 for v in range(vocab)]
    m = max(z)
    lse = m + math.log(sum(math.exp(x - m) for x in z))
    return [x - lse for x in z]


def _choice_base(body: dict) -> dict:
    return {"id": "cmpl-test", "object": "text_completion", "created": int(time.time()), "model": body["model"],
            "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": 0,
                      "total_tokens": len(body["prompt"])}}


def vllm_prompt_logprobs(body: dict, vocab: int = 64) -> dict:
    """vLLM's shape (vllm/entrypoints/openai/completion/protocol.py CompletionResponseChoice, vllm/logprobs.py
    Logprob): prompt_logprobs = [None, {"<id>": {logprob, rank, decoded_token}}], the k best (ranks 1..k) plus the
    prompt token with its vocabulary rank when outside them; -inf clamped to -9999.0 (clamp_prompt_logprobs)."""
    ids, k = body["prompt"], int(body["prompt_logprobs"])
    pl: list = [None]
    for i in range(1, len(ids)):
        lp = toy_logprobs(ids, i, vocab)
        order = sorted(range(vocab), key=lambda v: -lp[v])
        entry = {str(v): {"logprob": max(lp[v], -9999.0), "rank": r + 1, "decoded_token": f"t{v}"}
                 for r, v in enumerate(order[:k])}
        if ids[i] not in order[:k]:
            entry[str(ids[i])] = {"logprob": lp[ids[i]], "rank": order.index(ids[i]) + 1,
                                  "decoded_token": f"t{ids[i]}"}
        pl.append(entry)
    choice = {"index": 0, "text": " t9", "logprobs": None, "finish_reason": "length", "stop_reason": None,
              "prompt_logprobs": pl, "prompt_token_ids": None}
    return {**_choice_base(body), "choices": [choice]}


def openai_echo(body: dict, vocab: int = 64, generated: int = 0) -> dict:
    """OpenAI's legacy echo shape: logprobs.{tokens, token_logprobs, top_logprobs (text -> logprob), text_offset},
    the prompt's entries first (the first null), then `generated` more; top-k by text plus the given token."""
    ids, k = list(body["prompt"]) + [9] * generated, int(body["logprobs"])
    out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for i, t in enumerate(ids):
        out["tokens"].append(f"t{t}")
        out["text_offset"].append(sum(len(f"t{x}") for x in ids[:i]))
        if i == 0:
            out["token_logprobs"].append(None)
            out["top_logprobs"].append(None)
            continue
        lp = toy_logprobs(ids, i, vocab)
        best = sorted(range(vocab), key=lambda v: -lp[v])[:k]
        out["token_logprobs"].append(lp[t])
        out["top_logprobs"].append({f"t{v}": lp[v] for v in [*best, t]})
    choice = {"index": 0, "text": "".join(out["tokens"]), "logprobs": out, "finish_reason": "length"}
    return {**_choice_base(body), "choices": [choice]}
