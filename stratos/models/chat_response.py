"""A chat completion as the OpenAI teacher keeps it: the cached response form and the `TeacherOutput` built
from it (stratos/models/openai_teacher.py). The cached form is plain JSON, {text, top_logprobs, tokens,
finish_reason, usage} of choice 0, so a cache written by one client version reads back in another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


def parse_chat(completion: Any) -> dict[str, Any]:
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


def teacher_output(resp: dict[str, Any], *, cached: bool, attempts: int) -> TeacherOutput:
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
