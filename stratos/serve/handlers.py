"""Requests -> generation jobs -> OpenAI response bodies and stream chunks (blocking; run in threads).

    jobs = chat_jobs(engine, req, settings)                      # validates lengths (APIError 400)
    body = respond(engine, "chat", req, jobs)                    # non-streaming
    for chunk in stream_chunks(engine, "chat", req, jobs, cancel): ...
    body = respond(engine, "chat", req, jobs, tally=tally)       # tally: the tokens in/out and when the first
                                                                 # came, for the server's metrics (metrics.py)

A request with `n` choices (and, for completions, several prompts) becomes one job per choice,
run one after another on the request's slot; choice index = prompt_index * n + sample_index, as in
OpenAI's API. With a `seed`, choice i samples with seed + i, so choices differ but runs repeat.
A completion that scores its prompt (echo with logprobs, prompt_logprobs: stratos/serve/scoring.py) runs one
forward over the prompt per distinct prompt, shared by its choices; `max_tokens=0` generates nothing.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Iterator

from stratos.serve.engine import Engine, SamplingParams, TokenEvent
from stratos.serve.protocol import APIError, ChatCompletionRequest, CompletionRequest
from stratos.serve.scoring import echo_logprobs, prompt_logprobs_field, score_prompt
from stratos.serve.settings import ServeSettings


@dataclass
class Job:
    index: int
    prompt_ids: list[int]
    params: SamplingParams
    echo: str = ""  # completions with echo=true: the prompt text, returned before the completion
    echo_logprobs: bool = False  # echo=true with logprobs: the prompt tokens' entries lead `logprobs`
    prompt_logprobs: int | None = None  # vLLM's prompt_logprobs=k


def _budget(engine: Engine, n_prompt: int, asked: int | None, settings: ServeSettings) -> int:
    room = engine.context - n_prompt
    if room < 1 and not (asked == 0 and room == 0):  # max_tokens=0 (scoring): the prompt may fill the context
        raise APIError(400, f"this model's maximum context length is {engine.context} tokens; the prompt has "
                            f"{n_prompt}", param="messages", code="context_length_exceeded")
    if asked is None:
        return min(settings.max_tokens, room)
    if asked > settings.max_tokens:
        raise APIError(400, f"invalid value for 'max_tokens': {asked} (allowed: 1..{settings.max_tokens} "
                            "on this server)", param="max_tokens")
    if asked > room:
        raise APIError(400, f"this model's maximum context length is {engine.context} tokens; you requested "
                            f"{n_prompt + asked} ({n_prompt} in the prompt, {asked} to generate)",
                       param="max_tokens", code="context_length_exceeded")
    return asked


def _check_model(engine: Engine, model: str) -> None:
    if model != engine.name:
        raise APIError(404, f"the model '{model}' does not exist (this server serves '{engine.name}')",
                       param="model", code="model_not_found")


def _params(req, budget: int, i: int) -> SamplingParams:
    return SamplingParams(max_tokens=budget, temperature=req.temperature, top_p=req.top_p,
                          seed=None if req.seed is None else req.seed + i, stop=list(req.stop or []),
                          logprobs=req.n_logprobs)


def chat_jobs(engine: Engine, req: ChatCompletionRequest, settings: ServeSettings) -> list[Job]:
    _check_model(engine, req.model)
    if req.n > settings.max_n:
        raise APIError(400, f"invalid value for 'n': {req.n} (allowed: 1..{settings.max_n})", param="n")
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    try:
        ids = engine.chat_ids(messages)
    except Exception as e:  # a template may reject a conversation shape (jinja raise_exception)
        raise APIError(400, f"the chat template cannot format these messages: {e}", param="messages") from None
    budget = _budget(engine, len(ids), req.budget, settings)
    return [Job(i, ids, _params(req, budget, i)) for i in range(req.n)]


def completion_jobs(engine: Engine, req: CompletionRequest, settings: ServeSettings) -> list[Job]:
    _check_model(engine, req.model)
    for name in ("logprobs", "prompt_logprobs"):
        k = getattr(req, name)
        if k is not None and k > settings.max_logprobs:
            raise APIError(400, f"invalid value for '{name}': {k} (allowed: 0..{settings.max_logprobs} on this "
                                "server)", param=name)
    prompts = req.prompts()
    if len(prompts) * req.n > settings.max_n:
        raise APIError(400, f"too many choices: {len(prompts)} prompts x n={req.n} (allowed: at most "
                            f"{settings.max_n} per request)", param="n")
    vocab = len(engine.tokenizer)
    jobs = []
    for p_i, p in enumerate(prompts):
        if isinstance(p, str):
            ids, text = engine.encode(p), p
        else:
            if any(t < 0 or t >= vocab for t in p):
                raise APIError(400, f"invalid value for 'prompt': token ids must be in 0..{vocab - 1}", param="prompt")
            ids, text = list(p), engine.tokenizer.decode(p)
        if not ids:
            raise APIError(400, "invalid value for 'prompt': it encodes to no tokens", param="prompt")
        budget = _budget(engine, len(ids), req.budget, settings)
        for s in range(req.n):
            i = p_i * req.n + s
            jobs.append(Job(i, ids, _params(req, budget, i), echo=text if req.echo else "",
                            echo_logprobs=req.echo and req.logprobs is not None, prompt_logprobs=req.prompt_logprobs))
    return jobs


@dataclass
class Tally:
    """Tokens in and out of one request, and when its first token was sampled.

    The response's `usage` and the server's metrics (metrics.py) read these same numbers, so the two
    cannot disagree. Each distinct prompt counts once (several choices of one prompt share it).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_at: float | None = None  # time.perf_counter() when the request's first token was sampled
    _prompts: set[int] = field(default_factory=set, repr=False)

    def start(self, job: Job) -> None:
        if id(job.prompt_ids) not in self._prompts:
            self._prompts.add(id(job.prompt_ids))
            self.prompt_tokens += len(job.prompt_ids)

    def token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.completion_tokens += 1

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


# ------------------------------------------------------------------ logprobs in both API shapes
def _chat_logprob(engine: Engine, ev: TokenEvent) -> dict:
    def entry(tok: int, lp: float) -> dict:
        return {"token": engine.token_text(tok), "logprob": lp, "bytes": engine.token_bytes(tok)}

    return {**entry(ev.token_id, ev.logprob), "top_logprobs": [entry(t, lp) for t, lp in ev.top]}


def _completion_logprobs(engine: Engine, events: list[TokenEvent], offset: int) -> dict:
    out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for ev in events:
        tok = engine.token_text(ev.token_id)
        out["tokens"].append(tok)
        out["token_logprobs"].append(ev.logprob)
        out["top_logprobs"].append({engine.token_text(t): lp for t, lp in ev.top})
        out["text_offset"].append(offset)
        offset += len(tok)
    return out


# ------------------------------------------------------------------ running
def _events(engine: Engine, job: Job, tally: Tally, cancel: threading.Event | None) -> Iterator[TokenEvent]:
    tally.start(job)
    if job.params.max_tokens == 0:  # scoring only: no prefill for a first token nobody asked for
        return
    for ev in engine.stream(job.prompt_ids, job.params, cancel):
        tally.token()
        yield ev


def respond(engine: Engine, kind: str, req, jobs: list[Job], cancel: threading.Event | None = None,
            tally: Tally | None = None) -> dict:
    """The whole (non-streaming) response body."""
    tally = Tally() if tally is None else tally
    choices = []
    scored: dict[int, object] = {}  # id(prompt ids) -> PromptScores: one forward per distinct prompt
    for job in jobs:
        events = list(_events(engine, job, tally, cancel))
        text = "".join(ev.text for ev in events)
        finish = events[-1].finish_reason if events else "length"
        if kind == "chat":
            lp = {"content": [_chat_logprob(engine, ev) for ev in events]} if job.params.logprobs is not None else None
            choices.append({"index": job.index, "message": {"role": "assistant", "content": text},
                            "logprobs": lp, "finish_reason": finish})
        else:
            lp = _completion_logprobs(engine, events, len(job.echo)) if job.params.logprobs is not None else None
            choice = {"index": job.index, "text": job.echo + text, "logprobs": lp, "finish_reason": finish}
            if job.echo_logprobs or job.prompt_logprobs is not None:
                k = max(job.params.logprobs or 0, job.prompt_logprobs or 0)
                if id(job.prompt_ids) not in scored:
                    scored[id(job.prompt_ids)] = score_prompt(engine, job.prompt_ids, k)
                scores = scored[id(job.prompt_ids)]
                if job.echo_logprobs:  # the prompt's entries first (its first token's null), then the generated
                    head = echo_logprobs(engine, job.prompt_ids, _cut(scores, job.params.logprobs))
                    choice["logprobs"] = {key: head[key] + lp[key] for key in head}
                if job.prompt_logprobs is not None:
                    choice["prompt_logprobs"] = prompt_logprobs_field(engine, job.prompt_ids,
                                                                      _cut(scores, job.prompt_logprobs))
            choices.append(choice)
    return {"id": _id(kind), "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": int(time.time()), "model": engine.name, "choices": choices, "usage": tally.usage()}


def stream_chunks(engine: Engine, kind: str, req, jobs: list[Job], cancel: threading.Event,
                  tally: Tally | None = None) -> Iterator[dict]:
    """Chunks of a streamed response (the caller frames them as SSE and ends with [DONE])."""
    tally = Tally() if tally is None else tally
    rid, created = _id(kind), int(time.time())
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    usage_field = {"usage": None} if req.include_usage else {}

    def chunk(choice: dict) -> dict:
        return {"id": rid, "object": obj, "created": created, "model": engine.name, "choices": [choice], **usage_field}

    for job in jobs:
        want_lp = job.params.logprobs is not None
        if kind == "chat":
            yield chunk({"index": job.index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                         "finish_reason": None})
        elif job.echo:
            yield chunk({"index": job.index, "text": job.echo, "logprobs": None, "finish_reason": None})
        offset = len(job.echo)
        for ev in _events(engine, job, tally, cancel):
            if not (ev.text or want_lp or ev.finish_reason):  # text held back (partial character, stop prefix)
                continue
            if kind == "chat":
                lp = {"content": [_chat_logprob(engine, ev)]} if want_lp else None
                yield chunk({"index": job.index, "delta": {"content": ev.text} if ev.text else {}, "logprobs": lp,
                             "finish_reason": ev.finish_reason})
            else:
                lp = _completion_logprobs(engine, [ev], offset) if want_lp else None
                offset += len(engine.token_text(ev.token_id))
                yield chunk({"index": job.index, "text": ev.text, "logprobs": lp, "finish_reason": ev.finish_reason})
        if cancel.is_set():
            return
    if req.include_usage:
        yield {"id": rid, "object": obj, "created": created, "model": engine.name, "choices": [],
               "usage": tally.usage()}


def _cut(scores, k: int):
    """`scores` with its top lists cut to `k` (echo and prompt_logprobs may ask for different k)."""
    return replace(scores, top=[t[:k] for t in scores.top])


def _id(kind: str) -> str:
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
