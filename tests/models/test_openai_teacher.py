"""OpenAITeacher against a real HTTP server on 127.0.0.1 (tests/models/chat_server.py): order, logprobs,
retries (429 + Retry-After, 5xx, timeouts, dropped connections, malformed bodies), bounded concurrency,
the resumable cache (including a SIGKILLed run), and the API key never reaching logs, files or errors."""

from __future__ import annotations

import logging
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from stratos.config import register_configs
from stratos.errors import UserError
from stratos.models.openai_teacher import (
    MAX_RETRY_AFTER_S,
    OpenAITeacher,
    TeacherOutput,
    backoff_delay,
    parse_retry_after,
)
from tests.models.chat_server import ChatServer, Reply, echo

REPO = pathlib.Path(__file__).resolve().parents[2]


def compose_teacher(tmp_path, overrides: list[str]):
    """conf/teacher/openai_endpoint.yaml checked against TeacherConfig, with just the `paths.cache` it reads."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(overrides=["+teacher=openai_endpoint", f"+paths.cache={tmp_path}/cache", *overrides])


def make(url: str, **kw) -> OpenAITeacher:
    args = dict(name="t", kind="openai", base_url=url, model="test-model", api_key_env="STRATOS_TEST_NO_KEY",
                concurrency=4, max_retries=3, timeout_s=5.0, backoff_base_s=0.01, backoff_max_s=0.05)
    return OpenAITeacher(**{**args, **kw})


def fail_first(kind: str, times: int = 1, **reply):
    """Script: prompts starting with 'x' get `kind` on their first `times` attempts, then succeed."""
    def script(prompt, attempt, body):
        if prompt.startswith("x") and attempt < times:
            return Reply(kind=kind, **reply)
        return echo(prompt, attempt, body)
    return script


# ------------------------------------------------------------------ plain generation, logprobs
def test_generate_returns_text_in_prompt_order_with_usage():
    prompts = [f"question {i}" for i in range(7)]
    with ChatServer() as srv:
        outs = make(srv.url).generate(prompts)
    assert [o.text for o in outs] == [f"reply to: {p}" for p in prompts]
    assert all(isinstance(o, TeacherOutput) and o.error is None and not o.cached and o.attempts == 1 for o in outs)
    assert all(o.top_logprobs is None and o.finish_reason == "stop" for o in outs)
    assert outs[0].usage == {"prompt_tokens": 7, "completion_tokens": 4}
    # top_logprobs=0: no probe, no logprobs parameter, one request per prompt with the configured settings
    assert sorted(srv.prompts()) == sorted(prompts)
    body = srv.log[0]["body"]
    assert body["model"] == "test-model" and body["max_tokens"] == 256 and body["temperature"] == 0.0
    assert "logprobs" not in body and "seed" not in body


def test_identical_prompts_are_asked_once():
    with ChatServer() as srv:
        outs = make(srv.url).generate(["same", "other", "same"], max_new_tokens=9)
    assert [o.text for o in outs] == ["reply to: same", "reply to: other", "reply to: same"]
    assert outs[0] is not outs[2]
    assert srv.count("same") == 1 and srv.log[0]["body"]["max_tokens"] == 9


def test_logprobs_capability_probed_and_topk_returned():
    with ChatServer(logprobs="yes") as srv:
        t = make(srv.url, top_logprobs=3)
        assert t.capabilities == {"text", "logprobs"}
        outs = t.generate(["a b", "c"])
    assert [[(t, v) for t, v, _ in step] for step in outs[0].top_logprobs] == [
        [("reply", -0.05), ("alt1", -4.0), ("alt2", -5.0)], [("to:", -0.05), ("alt1", -4.0), ("alt2", -5.0)],
        [("a", -0.05), ("alt1", -4.0), ("alt2", -5.0)], [("b", -0.05), ("alt1", -4.0), ("alt2", -5.0)]]
    assert outs[0].tokens == [("reply", -0.05, None), ("to:", -0.05, None), ("a", -0.05, None), ("b", -0.05, None)]
    assert len(outs[1].top_logprobs) == 3
    sent = [r["body"] for r in srv.log if r["prompt"] in ("a b", "c")]
    assert all(b["logprobs"] is True and b["top_logprobs"] == 3 for b in sent)
    assert len(srv.log) == 3  # one probe (made once) + two prompts


@pytest.mark.parametrize("mode", ["ignore", "reject"])
def test_server_without_logprobs_gives_text_only(mode):
    with ChatServer(logprobs=mode) as srv:
        t = make(srv.url, top_logprobs=2)
        assert t.capabilities == {"text"}
        outs = t.generate(["q1", "q2"])
    assert [o.text for o in outs] == ["reply to: q1", "reply to: q2"] and all(o.top_logprobs is None for o in outs)
    # after the probe, generation no longer asks for logprobs (a 'reject' server would 400 every call)
    assert all("logprobs" not in r["body"] for r in srv.log if r["prompt"] in ("q1", "q2"))


# ------------------------------------------------------------------ retries
def test_429_retry_after_is_honoured():
    script = fail_first("status", status=429, message="rate limited", headers={"Retry-After": "1"})
    with ChatServer(script) as srv:
        outs = make(srv.url).generate(["x1", "plain"])
    assert outs[0].text == "reply to: x1" and outs[0].attempts == 2 and outs[1].attempts == 1
    t0, t1 = [r["t"] for r in srv.log if r["prompt"] == "x1"]
    # back-off alone would wait <= 0.05 s (backoff_max_s); the server asked for 1 s
    assert 1.0 <= t1 - t0 < 3.0  # (generous upper bound: the CPU is shared)


def test_retry_after_ms_header_is_honoured():
    script = fail_first("status", status=503, headers={"retry-after-ms": "400"})
    with ChatServer(script) as srv:
        outs = make(srv.url).generate(["x1"])
    t0, t1 = [r["t"] for r in srv.log]
    assert outs[0].attempts == 2 and 0.4 <= t1 - t0 < 2.0


@pytest.mark.parametrize("kind,reply,expect", [
    ("status", {"status": 500}, "HTTP 500"),
    ("status", {"status": 502}, "HTTP 502"),
    ("malformed", {}, "malformed response"),
    ("nochoices", {}, "malformed response"),
    ("drop", {}, "connection error"),
    ("ok", {"delay_s": 2.5, "text": "late"}, "timeout after 1s"),
])
def test_transient_failures_are_retried(kind, reply, expect, caplog):
    with ChatServer(fail_first(kind, times=2, **reply)) as srv:
        with caplog.at_level(logging.DEBUG, logger="stratos.models.openai_teacher"):
            outs = make(srv.url, timeout_s=1.0).generate(["x1", "plain"])
    assert [o.text for o in outs] == ["reply to: x1", "reply to: plain"]
    assert outs[0].attempts == 3 and outs[0].error is None
    assert srv.count("x1") == 3 and srv.count("plain") == 1
    assert expect in caplog.text  # each retry says why


def test_item_that_keeps_failing_is_reported_not_empty():
    script = fail_first("status", times=99, status=500, message="boom")
    with ChatServer(script) as srv:
        t = make(srv.url, max_retries=2)
        outs = t.generate(["x-broken", "fine"])
    assert outs[0].text == "" and outs[0].error == "HTTP 500: boom" and outs[0].attempts == 3
    assert outs[1].text == "reply to: fine" and outs[1].error is None
    assert srv.count("x-broken") == 3
    assert t.stats["failed"] == 1 and t.stats["ok"] == 1 and t.stats["retries"] == 2 and t.stats["requests"] == 4


def test_client_errors_are_not_retried():
    script = fail_first("status", times=99, status=400, message="context too long")
    with ChatServer(script) as srv:
        outs = make(srv.url).generate(["x-long", "fine"])
    assert outs[0].error == "HTTP 400: context too long" and outs[0].attempts == 1 and srv.count("x-long") == 1


def test_all_failing_raises_one_line_user_error_naming_base_url():
    with ChatServer(lambda p, a, b: Reply(kind="status", status=503, message="overloaded")) as srv:
        with pytest.raises(UserError) as e:
            make(srv.url, max_retries=1).generate(["a", "b", "c"])
    msg = str(e.value)
    assert srv.url in msg and "all 3 requests" in msg and "HTTP 503" in msg and "\n" not in msg
    assert len(srv.log) == 6  # 1 try + 1 retry each


def test_server_down_raises_user_error_naming_base_url():
    with ChatServer() as srv:
        url = srv.url  # the port is free again once the server is gone
    with pytest.raises(UserError) as e:
        make(url, max_retries=1).generate(["a"])
    assert url in str(e.value) and "connection error" in str(e.value)
    with pytest.raises(UserError, match="probe request to http://127.0.0.1"):
        _ = make(url, max_retries=0).capabilities


# ------------------------------------------------------------------ concurrency
@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_bound_is_respected(concurrency):
    slow = lambda p, a, b: Reply(text=f"ok {p}", delay_s=0.1)  # noqa: E731
    with ChatServer(slow) as srv:
        t0 = time.monotonic()
        outs = make(srv.url, concurrency=concurrency).generate([f"p{i}" for i in range(9)])
        wall = time.monotonic() - t0
    assert all(o.error is None for o in outs)
    assert srv.max_in_flight == concurrency  # never more, and the pool really runs that many at once
    assert wall >= 0.1 * 9 / concurrency


# ------------------------------------------------------------------ cache
def test_cache_hits_make_no_calls_and_key_covers_params(tmp_path):
    cache = str(tmp_path / "cache")
    with ChatServer() as srv:
        t = make(srv.url)
        first = t.generate(["a", "b"], cache_dir=cache)
        again = t.generate(["a", "b"], cache_dir=cache)
        assert len(srv.log) == 2
        assert [o.text for o in again] == [o.text for o in first] and all(o.cached and o.attempts == 0 for o in again)
        t.generate(["a"], cache_dir=cache, max_new_tokens=5)  # other params: another request
        t.generate(["a"], cache_dir=cache, sample=1, temperature=0.7)  # another draw
        assert len(srv.log) == 4 and srv.log[-1]["body"]["seed"] == 1 and srv.log[-1]["body"]["temperature"] == 0.7
        other = make(srv.url, model="other-model").generate(["a"], cache_dir=cache)
        assert not other[0].cached and len(srv.log) == 5
    files = sorted((tmp_path / "cache" / "openai").rglob("*.json"))
    assert len(files) == 5 and all(f.parent.name == f.stem[:2] for f in files)
    assert t.stats["cached"] == 2


def test_failures_are_not_cached_and_retried_next_run(tmp_path):
    cache = str(tmp_path / "cache")
    with ChatServer(fail_first("status", times=2, status=500)) as srv:
        t = make(srv.url, max_retries=1)
        assert t.generate(["x1", "b"], cache_dir=cache)[0].error == "HTTP 500: error"
        outs = t.generate(["x1", "b"], cache_dir=cache)  # 3rd attempt of x1 succeeds; b is cached
    assert outs[0].text == "reply to: x1" and not outs[0].cached and outs[1].cached
    assert srv.count("x1") == 3 and srv.count("b") == 1


def test_corrupt_cache_entry_is_refetched(tmp_path):
    cache = str(tmp_path / "cache")
    with ChatServer() as srv:
        make(srv.url).generate(["a"], cache_dir=cache)
        (entry,) = (tmp_path / "cache").rglob("*.json")
        entry.write_text('{"key": "trunc')
        outs = make(srv.url).generate(["a"], cache_dir=cache)
    assert outs[0].text == "reply to: a" and not outs[0].cached and srv.count("a") == 2


CHILD = """
import sys
from stratos.models.openai_teacher import OpenAITeacher
t = OpenAITeacher(name="t", base_url=sys.argv[1], model="m", api_key_env="", concurrency=2, cache_dir=sys.argv[2])
t.generate([f"q{i}" for i in range(int(sys.argv[3]))])
print("FINISHED")
"""


def test_killed_run_resumes_without_repeating_calls(tmp_path):
    cache = tmp_path / "cache"
    n, served = 12, 5
    with ChatServer(block_after=served) as srv:  # answers 5, then hangs: the run is killed mid-flight
        proc = subprocess.Popen([sys.executable, "-c", CHILD, srv.url, str(cache), str(n)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 60
        while len(list(cache.rglob("*.json"))) < served and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.2)  # let any stray write land before the kill (none should: the server is holding)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        first = set(srv.prompts())
    assert proc.returncode == -signal.SIGKILL and "FINISHED" not in out, out
    assert len(list(cache.rglob("*.json"))) == served and not list(cache.rglob("*.tmp-*"))

    with ChatServer() as srv2:
        outs = make(srv2.url, model="m", api_key_env="").generate([f"q{i}" for i in range(n)], cache_dir=str(cache))
    assert [o.text for o in outs] == [f"reply to: q{i}" for i in range(n)]
    assert sum(o.cached for o in outs) == served
    assert len(srv2.log) == n - served  # only the calls the killed run had not finished
    done_before = {f"q{i}" for i, o in enumerate(outs) if o.cached}
    assert done_before <= first and not (done_before & set(srv2.prompts()))


# ------------------------------------------------------------------ the API key stays secret
SECRET = "sk-stratos-TEST-7f3a9c1e"


def test_api_key_never_in_logs_cache_errors_or_config(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("STRATOS_TEST_KEY", SECRET)
    cache = tmp_path / "cache"
    # the failing prompt's error body echoes the Authorization header back, as some proxies do
    script = fail_first("status", times=99, status=500, message="upstream failed for {auth}")
    with ChatServer(script, api_key=SECRET) as srv:
        with caplog.at_level(logging.DEBUG):  # every logger, including openai's and the HTTP client's
            t = make(srv.url, api_key_env="STRATOS_TEST_KEY", max_retries=1, top_logprobs=2)
            assert t.capabilities == {"text", "logprobs"}
            outs = t.generate(["x-echo", "ok"], cache_dir=str(cache))
    assert all(r["auth"] == f"Bearer {SECRET}" for r in srv.log)  # the key was sent ...
    assert outs[1].text == "reply to: ok"
    assert outs[0].error == "HTTP 500: upstream failed for Bearer ***"  # ... but scrubbed from what came back
    assert "upstream failed for Bearer ***; retry 1/1" in caplog.text  # the retry was logged, scrubbed
    assert SECRET not in caplog.text
    assert SECRET not in repr(t) and SECRET not in str(vars(t).get("stats"))
    assert cache.exists() and all(SECRET not in f.read_text() for f in cache.rglob("*") if f.is_file())
    cfg = compose_teacher(tmp_path, [f"teacher.base_url={srv.url}", "teacher.model=m",
                                     "teacher.api_key_env=STRATOS_TEST_KEY"])
    assert SECRET not in OmegaConf.to_yaml(cfg, resolve=True)


def test_rejected_key_names_the_env_var_not_the_key(monkeypatch):
    monkeypatch.setenv("STRATOS_TEST_KEY", SECRET)
    with ChatServer(api_key="the-right-key") as srv:
        with pytest.raises(UserError) as e:
            make(srv.url, api_key_env="STRATOS_TEST_KEY").generate(["a"])
    assert "HTTP 401" in str(e.value) and "'STRATOS_TEST_KEY'" in str(e.value) and SECRET not in str(e.value)


# ------------------------------------------------------------------ config
def test_yaml_option_composes_and_instantiates(tmp_path):
    with ChatServer() as srv:
        cfg = compose_teacher(tmp_path, [f"teacher.base_url={srv.url}", "teacher.model=m", "teacher.max_retries=0"])
        t = instantiate(cfg.teacher)
        assert isinstance(t, OpenAITeacher) and t.kind == "openai" and t.concurrency == 8
        assert t.model_name == "m" and not hasattr(t, "model")  # `.model` means a torch module elsewhere
        assert t.cache_dir == f"{tmp_path}/cache"  # ${paths.cache}: shared, content-addressed
        outs = t.generate(["hello"])
    assert outs[0].text == "reply to: hello"
    assert list((tmp_path / "cache" / "openai").rglob("*.json"))


@pytest.mark.parametrize("key,value,allowed", [
    ("concurrency", 0, "an integer >= 1"),
    ("base_url", "localhost:8000", "an http(s) URL"),
    ("model", None, "the model name"),
    ("max_retries", -1, "an integer >= 0"),
    ("timeout_s", 0, "seconds > 0"),
])
def test_bad_values_are_one_line_user_errors(key, value, allowed):
    with pytest.raises(UserError) as e:
        make("http://127.0.0.1:9/v1", **{key: value})
    assert f"teacher.{key}" in str(e.value) and allowed in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ retry policy (pure functions)
def test_backoff_is_bounded_exponential_with_jitter():
    rng = random.Random(0)
    for r in range(8):
        c = min(2.0, 0.1 * 2 ** r)
        ds = [backoff_delay(r, base_s=0.1, cap_s=2.0, retry_after=None, rng=rng) for _ in range(200)]
        assert all(c / 2 <= d <= c for d in ds) and max(ds) - min(ds) > c / 4  # jittered, not constant
    ds = [backoff_delay(0, base_s=0.1, cap_s=2.0, retry_after=3.0, rng=rng) for _ in range(200)]
    assert all(3.0 <= d <= 3.3 for d in ds)  # never earlier than the server asked
    assert backoff_delay(0, base_s=0.1, cap_s=2.0, retry_after=1e6, rng=rng) <= 1.1 * MAX_RETRY_AFTER_S


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412480.0) == 30.0
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None


def test_progress_lines_are_logged(caplog):
    with ChatServer() as srv, caplog.at_level(logging.INFO, logger="stratos.models.openai_teacher"):
        make(srv.url, progress_every_s=0.0, concurrency=1).generate([f"p{i}" for i in range(4)])
    assert "teacher t: 1/4 done (cached 0, failed 0)" in caplog.text
    assert "teacher t: 4 prompts in" in caplog.text and "4 called, 0 cached, 0 failed" in caplog.text
