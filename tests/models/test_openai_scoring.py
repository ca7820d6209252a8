"""The served teacher's scoring client (stratos/models/openai_scoring.py): vLLM's prompt_logprobs and OpenAI's echo
shape parsed (a canned vLLM body as its protocol documents it, and over HTTP against a scripted server), the probe
(auto order, an explicit score_api, max_tokens 0 -> 1, servers that do not score), retries, order, concurrency.
The real `python -m stratos.serve` answering both shapes is tests/serve/test_as_teacher.py."""

from __future__ import annotations

import json

import pytest

from stratos.errors import UserError
from stratos.models.openai_scoring import NotScored, parse_echo, parse_prompt_logprobs, score_request
from tests.models.chat_server import ChatServer, Reply, openai_echo, toy_logprobs, vllm_prompt_logprobs
from tests.models.test_openai_teacher import make

IDS = [5, 17, 3, 60, 9]

# A vLLM /v1/completions answer to {"prompt": [1, 15, 42], "prompt_logprobs": 2, "max_tokens": 1}, written from
# vllm/entrypoints/openai/completion/protocol.py (CompletionResponseChoice.prompt_logprobs:
# list[dict[int, Logprob] | None]) and vllm/logprobs.py (Logprob: logprob, rank, decoded_token): int keys become
# JSON strings, the prompt token is added with its vocabulary rank when outside the top k, -inf is sent as -9999.0.
VLLM_BODY = json.loads("""{
  "id": "cmpl-3f2a", "object": "text_completion", "created": 1733400000, "model": "Qwen/Qwen2.5-7B-Instruct",
  "choices": [{"index": 0, "text": " the", "logprobs": null, "finish_reason": "length", "stop_reason": null,
               "prompt_logprobs": [null,
                 {"15": {"logprob": -0.25, "rank": 1, "decoded_token": " a"},
                  "7": {"logprob": -2.0, "rank": 2, "decoded_token": "b"}},
                 {"3": {"logprob": -0.1, "rank": 1, "decoded_token": "c"},
                  "9": {"logprob": -3.5, "rank": 2, "decoded_token": "d"},
                  "42": {"logprob": -9999.0, "rank": 1234, "decoded_token": "x"}}],
               "prompt_token_ids": null}],
  "usage": {"prompt_tokens": 3, "total_tokens": 4, "completion_tokens": 1}}""")


def test_vllm_prompt_logprobs_body_parses_by_token_id():
    s = parse_prompt_logprobs(VLLM_BODY["choices"][0], [1, 15, 42])
    assert s.ids == [1, 15, 42] and s.top[0] is None and s.logprobs[0] is None
    assert s.texts == [None, " a", "x"] and s.logprobs[1:] == [-0.25, -9999.0]
    assert s.top[1] == [(" a", 15, -0.25), ("b", 7, -2.0)]
    assert s.top[2] == [("c", 3, -0.1), ("d", 9, -3.5), ("x", 42, -9999.0)]
    with pytest.raises(NotScored):  # a completion without the field: the server does not score this way
        parse_prompt_logprobs({"index": 0, "text": "a", "logprobs": None}, [1, 15, 42])


def test_openai_echo_body_parses_by_text_and_reads_the_prompt_entries_only():
    body = openai_echo({"model": "m", "prompt": IDS, "logprobs": 2}, generated=1)  # one generated entry after
    s = parse_echo(body["choices"][0], IDS)
    assert s.texts == [f"t{i}" for i in IDS] and s.logprobs[0] is None and s.top[0] is None
    for i in range(1, len(IDS)):
        lp = toy_logprobs(IDS, i, 64)
        assert s.logprobs[i] == pytest.approx(lp[IDS[i]])
        assert all(tid is None and v == pytest.approx(lp[int(t[1:])]) for t, tid, v in s.top[i])
        assert 2 <= len(s.top[i]) <= 3  # k best + the given token
    with pytest.raises(NotScored):
        parse_echo({"index": 0, "text": "x", "logprobs": None}, IDS)


def vllm(body, attempt):  # scores both ways, as vLLM does
    return Reply(body=vllm_prompt_logprobs(body) if "prompt_logprobs" in body else openai_echo(body))


def echo_only(body, attempt):  # OpenAI's legacy API: unknown parameters are a 400
    if "prompt_logprobs" in body:
        return Reply(kind="status", status=400, message="Unrecognized request argument supplied: prompt_logprobs")
    return Reply(body=openai_echo(body))


@pytest.mark.parametrize("script,api", [(vllm, "prompt_logprobs"), (echo_only, "echo")])
def test_auto_probes_prompt_logprobs_first_and_scores_in_order(script, api):
    with ChatServer(completions=script) as srv:
        t = make(srv.url, score_top_logprobs=3)
        assert t.scoring.api == api and "score" not in t.capabilities
        seqs = [IDS, IDS[:3], [7, 8, 9, 10]]
        out = t.score(seqs)
    assert [o.ids for o in out] == seqs
    for o, ids in zip(out, seqs):
        for i in range(1, len(ids)):
            assert o.logprobs[i] == pytest.approx(toy_logprobs(ids, i, 64)[ids[i]])
            if api == "prompt_logprobs":
                assert {tid for _, tid, _ in o.top[i]} >= {ids[i]} and len(o.top[i]) in (3, 4)
    # the three requests run in parallel (concurrency 4), so they reach the server in any order: find IDS's by its
    # prompt; the output order above is what `score` promises
    sent = {json.dumps(r["body"]["prompt"]): r["body"] for r in srv.log[-3:]}
    assert set(sent) == {json.dumps(s) for s in seqs}
    assert sent[json.dumps(IDS)] == score_request("test-model", IDS, 3, api)  # the documented request, nothing else
    assert t.score_stats.sequences == 3 and t.score_stats.tokens == sum(len(s) - 1 for s in seqs)


def test_an_explicit_score_api_the_server_lacks_is_reported_with_what_works():
    with ChatServer(completions=echo_only) as srv:
        t = make(srv.url, score_api="prompt_logprobs")
        sup = t.scoring
        assert sup.api is None and sup.works == ["echo"] and "Unrecognized request argument" in sup.failures[
            "prompt_logprobs"]
        assert not t.scoring.api
        with pytest.raises(UserError, match="does not score given tokens"):
            t.score([IDS])


def test_a_chat_only_server_scores_nothing():
    with ChatServer() as srv:
        sup = make(srv.url).scoring
    assert sup.api is None and set(sup.failures) == {"prompt_logprobs", "echo"}
    assert all(m.startswith("HTTP 404") for m in sup.failures.values())


def test_a_server_that_refuses_max_tokens_zero_is_asked_for_one():
    def old_vllm(body, attempt):
        if "prompt_logprobs" in body:
            return Reply(kind="status", status=400, message="unknown field")
        if body["max_tokens"] == 0:
            return Reply(kind="status", status=400, message="max_tokens must be at least 1, got 0.")
        return Reply(body=openai_echo(body, generated=body["max_tokens"]))

    with ChatServer(completions=old_vllm) as srv:
        t = make(srv.url)
        assert (t.scoring.api, t.scoring.max_tokens) == ("echo", 1)
        out = t.score([IDS])
    assert srv.log[-1]["body"]["max_tokens"] == 1 and len(out[0].logprobs) == len(IDS)  # the generated one: dropped


def test_a_server_that_ignores_the_field_is_not_retried():
    def ignores(body, attempt):  # answers, but without prompt_logprobs (a server that drops unknown fields)
        if "prompt_logprobs" in body:
            return Reply(body={"id": "c", "object": "text_completion", "created": 0, "model": "m",
                               "choices": [{"index": 0, "text": "x", "logprobs": None, "finish_reason": "length"}]})
        return Reply(body=openai_echo(body))

    with ChatServer(completions=ignores) as srv:
        t = make(srv.url, max_retries=3)
        assert t.scoring.api == "echo"
    assert sum("prompt_logprobs" in r["body"] for r in srv.log) == 1  # final at once: NotScored
    assert "no prompt_logprobs" in t.scoring.failures["prompt_logprobs"]


def test_failed_scoring_requests_are_retried_then_reported_as_none():
    def flaky(body, attempt):
        if body["prompt"] == IDS[:3] and attempt == 0:
            return Reply(kind="status", status=503, message="busy")
        if body["prompt"] == [7, 7]:
            return Reply(kind="status", status=500, message="broken")
        return vllm(body, attempt)

    with ChatServer(completions=flaky) as srv:
        t = make(srv.url, max_retries=2, concurrency=2)
        out = t.score([IDS, IDS[:3], [7, 7], IDS[:2]])
        assert srv.count(json.dumps(IDS[:3])) == 2 and srv.count(json.dumps([7, 7])) == 3
        assert out[2] is None and all(o is not None for i, o in enumerate(out) if i != 2)
        assert t.score_stats.failed == 1 and srv.max_in_flight <= 2
        with pytest.raises(UserError, match="all 1 scoring requests to http://127.0.0.1"):
            t.score([[7, 7]])


def test_capabilities_alone_send_no_scoring_request():
    # a run that never scores (no on-policy KD) must not pay for the scoring probe
    with ChatServer(completions=vllm) as srv:
        t = make(srv.url, score_top_logprobs=3)
        assert "text" in t.capabilities
        assert not [r for r in srv.log if "prompt_logprobs" in r["body"] or r["body"].get("echo")]
        assert t.scoring.api == "prompt_logprobs"
        assert [r for r in srv.log if "prompt_logprobs" in r["body"]]
