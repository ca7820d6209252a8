"""Request schemas: what is accepted, what is refused, and the one-line messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stratos.serve.protocol import APIError, ChatCompletionRequest, CompletionRequest, validation_message

MSG = [{"role": "user", "content": "hi"}]


def test_chat_defaults_and_parts():
    r = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                                 {"type": "text", "text": "b"}]}],
                              user="ignored-extra-field")
    assert r.messages[0].text() == "ab" and r.n == 1 and r.temperature == 1.0 and r.stop == []
    assert r.budget is None and r.n_logprobs is None
    r = ChatCompletionRequest(model="m", messages=MSG, logprobs=True, top_logprobs=3, max_completion_tokens=5,
                              max_tokens=9, stop="\n")
    assert (r.n_logprobs, r.budget, r.stop) == (3, 5, ["\n"])  # max_completion_tokens wins, as in OpenAI


@pytest.mark.parametrize("extra", [dict(top_logprobs=2), dict(frequency_penalty=1.0), dict(logit_bias={"5": 1.0}),
                                   dict(stop=[""]), dict(tools=[{"type": "function"}]), dict(top_p=0.0),
                                   dict(response_format={"type": "json_object"}), dict(n=0)])
def test_chat_refuses(extra):
    with pytest.raises(ValidationError):
        ChatCompletionRequest(model="m", messages=MSG, **extra)


def test_completion_prompts():
    assert CompletionRequest(model="m", prompt="a").prompts() == ["a"]
    assert CompletionRequest(model="m", prompt=["a", "b"]).prompts() == ["a", "b"]
    assert CompletionRequest(model="m", prompt=[1, 2, 3]).prompts() == [[1, 2, 3]]
    assert CompletionRequest(model="m", prompt=[[1], [2]]).prompts() == [[1], [2]]
    assert CompletionRequest(model="m", prompt="a").budget == 16  # OpenAI's legacy default
    for bad in (dict(prompt=[]), dict(prompt="a", suffix="z"), dict(prompt=["a"] * 17),
                dict(prompt="a", max_tokens=0), dict(prompt="a", max_tokens=-1), dict(prompt="a", prompt_logprobs=-1),
                dict(prompt="a", prompt_logprobs=1, stream=True), dict(prompt="a", echo=True, logprobs=1, stream=True)):
        with pytest.raises(ValidationError):
            CompletionRequest(model="m", **bad)


def test_completion_scoring_requests():
    r = CompletionRequest(model="m", prompt=[1, 2, 3], echo=True, logprobs=5, max_tokens=0)
    assert r.budget == 0 and r.n_logprobs == 5  # max_tokens=0 with echo: score the prompt, generate nothing
    assert CompletionRequest(model="m", prompt=[1, 2], prompt_logprobs=3, max_tokens=1).prompt_logprobs == 3
    assert CompletionRequest(model="m", prompt="a", echo=True, logprobs=50).logprobs == 50  # the cap is the server's


def test_validation_message_names_the_field():
    try:
        ChatCompletionRequest(model="m", messages=MSG, temperature=9)
    except ValidationError as e:
        msg, param = validation_message([{**e.errors()[0], "loc": ("body", *e.errors()[0]["loc"])}])
    assert param == "temperature" and msg.startswith("invalid value for 'temperature'")
    assert validation_message([{"type": "json_invalid", "loc": ("body", 3), "msg": "x"}]) == (
        "request body is not valid JSON", None)


def test_api_error_body():
    e = APIError(429, "busy", type_="server_overloaded", code="rate_limit_exceeded")
    assert e.body() == {"error": {"message": "busy", "type": "server_overloaded", "param": None,
                                  "code": "rate_limit_exceeded"}}
