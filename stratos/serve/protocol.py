"""OpenAI request schemas (the subset Stratos serves) and the error shape.

Requests are validated by pydantic; anything out of range becomes a 400 with OpenAI's error body

    {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": null}}

Unknown fields are ignored (clients send `user`, `metadata`, ...), but fields that would change the
output and that we do not implement (penalties, logit_bias, tools, suffix) are rejected rather than
silently dropped: a caller must never get an answer to a different question.

Scoring given tokens (stratos/serve/scoring.py), on /v1/completions: `echo=true` with `logprobs=k` returns
the prompt tokens' log-probs and top-k first (the first token's entry null, as in OpenAI's API), and vLLM's
extra field `prompt_logprobs=k` returns `choices[i].prompt_logprobs`; `max_tokens=0` (with echo) scores the
prompt without generating. Neither streams (as in vLLM), and k is capped by the server's `max_logprobs`.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class APIError(Exception):
    """An error answered as OpenAI's JSON error body with an HTTP status."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[ContentPart], None] = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    max_tokens: Optional[int] = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=8)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    stop: Union[str, list[str], None] = Field(None, validate_default=True)  # normalised to a list
    seed: Optional[int] = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: Optional[dict[str, float]] = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v):
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        if any(not s for s in stops):
            raise ValueError("stop sequences must be non-empty")
        return stops

    @model_validator(mode="after")
    def _unsupported(self):
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ValueError(f"{name} is not supported by this server (send 0 or omit it)")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported by this server")
        return self

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: Optional[int] = Field(None, ge=0, le=20)
    tools: Optional[list[Any]] = None
    response_format: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _chat_checks(self):
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs requires logprobs=true")
        if self.tools:
            raise ValueError("tools are not supported by this server")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise ValueError("only response_format type 'text' is supported by this server")
        return self

    @property
    def budget(self) -> Optional[int]:
        return self.max_completion_tokens or self.max_tokens

    @property
    def n_logprobs(self) -> Optional[int]:
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_Common):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    max_tokens: Optional[int] = Field(None, ge=0)  # 0 = score the prompt only (echo=true)
    logprobs: Optional[int] = Field(None, ge=0)  # at most the server's max_logprobs (handlers.py)
    prompt_logprobs: Optional[int] = Field(None, ge=0)  # vLLM's extra field; the same cap
    echo: bool = False
    suffix: Optional[str] = None

    @model_validator(mode="after")
    def _completion_checks(self):
        if self.suffix:
            raise ValueError("suffix is not supported by this server")
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens=0 needs echo=true (the prompt is scored, nothing is generated)")
        if self.stream and (self.prompt_logprobs is not None or self.max_tokens == 0
                            or (self.echo and self.logprobs is not None)):
            raise ValueError("prompt scoring (echo with logprobs, prompt_logprobs, max_tokens=0) is not available "
                             "with stream=true")
        if isinstance(self.prompt, list) and len(self.prompt) == 0:
            raise ValueError("prompt must not be empty")
        if isinstance(self.prompt, list) and len(self.prompt) > 16 and not isinstance(self.prompt[0], int):
            raise ValueError("at most 16 prompts per request")
        return self

    @property
    def budget(self) -> int:
        return 16 if self.max_tokens is None else self.max_tokens  # 16: OpenAI's default for legacy completions

    @property
    def n_logprobs(self) -> Optional[int]:
        return self.logprobs

    def prompts(self) -> list[Union[str, list[int]]]:
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and isinstance(p[0], int):
            return [list(p)]  # one prompt given as token ids
        return list(p)


def validation_message(errors: list[dict]) -> tuple[str, str | None]:
    """(one-line message, param) from pydantic/FastAPI validation errors."""
    e = errors[0]
    loc = [str(x) for x in e.get("loc", ()) if x not in ("body",)]
    param = ".".join(loc) or None
    if e.get("type") == "json_invalid":
        return "request body is not valid JSON", None
    msg = str(e.get("msg", "invalid request")).removeprefix("Value error, ")
    return (f"invalid value for '{param}': {msg}" if param else msg), param
