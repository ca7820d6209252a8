r"""Log-probs of GIVEN token ids from an OpenAI-compatible server: the served teacher of on-policy KD.

    support = teacher.scoring             # ScoreSupport: which request shape the server answers (probed once)
    scored = teacher.score([ids, ...])    # [ScoredSequence | None], in order; None = failed after retries

The student samples; the server then reads the sample as a prompt and reports, at every position $i \ge 1$,
$\log p_T(x_i \mid x_{<i})$ and the top-k $\{(v, \log p_T(v \mid x_{<i}))\}$ at T = 1. Two request shapes
(`teacher.score_api`; `auto` probes prompt_logprobs first, since its entries carry token ids, then echo):

  prompt_logprobs  vLLM's extra field on /v1/completions:
                       {"prompt": [ids], "prompt_logprobs": k, "max_tokens": 1, "temperature": 0}
                   -> choices[0].prompt_logprobs = [null, {"<id>": {"logprob", "rank", "decoded_token"}}, ...]:
                   per position the k best (ranks 1..k) plus the given token when it is not among them
                   (vllm/entrypoints/openai/completion/protocol.py, vllm/logprobs.py). max_tokens is 1: vLLM
                   generates at least one token without echo; that token is ignored.
  echo             legacy /v1/completions, as OpenAI documents it:
                       {"prompt": [ids], "echo": true, "logprobs": k, "max_tokens": 0, "temperature": 0}
                   -> choices[0].logprobs.{tokens, token_logprobs, top_logprobs}: the prompt's entries first, the
                   first one null; top_logprobs maps token TEXT -> log-prob (k best + the given token). max_tokens
                   is 0 (nothing generated, nothing to pay for): OpenAI's legacy models and vLLM (echo without
                   generation) accept it; a server that refuses 0 (older vLLM: "max_tokens must be at least 1")
                   is probed again with 1, and only the prompt's entries are read.

Both parse into one neutral `ScoredSequence` (entries as (text, id or None, log-prob)); mapping them onto the
student's vocabulary, and checking that the server reads the same vocabulary, is stratos/distill/served_scores.py.
A response without the asked-for field is final (`NotScored`: the server does not score that way), a truncated
or malformed body is retried like any other (the teacher's retry policy, concurrency and scrubbing). Scores are
not cached: rollouts differ every step, and a cache would grow by k entries per sampled token.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from stratos.errors import UserError

log = logging.getLogger(__name__)

APIS = ("prompt_logprobs", "echo")  # the order `auto` probes them in
PROBE_IDS = [1, 2, 3, 4]  # any ids a vocabulary of more than 4 tokens holds; the student's are checked later
EXTRA_FIELDS = ("prompt_logprobs",)  # not in the openai client's signature: sent in extra_body


class NotScored(ValueError):
    """A well-formed completion without the log-probs asked for: the server does not score this way (final)."""


@dataclass
class ScoredSequence:
    """The server's scores of `ids`; index i = position i, None at 0 (no context).

    texts[i]     the server's text of ids[i] (echo `tokens`, or `decoded_token`), None when it sent none
    logprobs[i]  log p_T(ids[i] | ids[:i])
    top[i]       (text, id or None, log-prob) entries: the top-k, plus the given token when outside them
    """

    ids: list[int]
    texts: list[str | None]
    logprobs: list[float | None]
    top: list[list[tuple[str | None, int | None, float]] | None]


@dataclass
class ScoreSupport:
    """What the probe found: `api` to use (None: none usable), echo's max_tokens, and why the others failed."""

    api: str | None = None
    max_tokens: int = 0
    works: list[str] = field(default_factory=list)  # shapes the server answered (an explicit score_api may not be one)
    failures: dict[str, str] = field(default_factory=dict)  # shape -> the server's answer (one line)

    def why(self) -> str:
        return "; ".join(f"{api}: {msg}" for api, msg in self.failures.items())


def score_request(model: str, ids: list[int], k: int, api: str, max_tokens: int = 0) -> dict[str, Any]:
    """The request body (deterministic: temperature 0; nothing sampled is used)."""
    if api == "prompt_logprobs":
        return {"model": model, "prompt": list(ids), "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": k}
    return {"model": model, "prompt": list(ids), "echo": True, "logprobs": k, "max_tokens": max_tokens,
            "temperature": 0.0}


def _token_id(text: str | None) -> int | None:
    """vLLM's `token_id:N` token form (--return-tokens-as-token-ids), else None."""
    if text and text.startswith("token_id:") and text[9:].isdigit():
        return int(text[9:])
    return None


def parse_echo(choice: dict, ids: list[int]) -> ScoredSequence:
    """OpenAI's echo shape -> ScoredSequence (the first len(ids) entries: the prompt's)."""
    lp = choice.get("logprobs") or {}
    tokens, given, top = lp.get("tokens"), lp.get("token_logprobs"), lp.get("top_logprobs")
    n = len(ids)
    if not tokens or given is None or top is None or len(tokens) < n or len(given) < n or len(top) < n:
        raise NotScored("the response echoes no log-probs for the prompt tokens")
    out = ScoredSequence(list(ids), [None] * n, [None] * n, [None] * n)
    for i in range(n):
        out.texts[i] = tokens[i]
        if i == 0:
            continue
        if given[i] is None or not isinstance(top[i], dict):
            raise NotScored(f"no log-probs at prompt position {i}")
        out.logprobs[i] = float(given[i])
        out.top[i] = [(t, _token_id(t), float(v)) for t, v in top[i].items()]
    return out


def parse_prompt_logprobs(choice: dict, ids: list[int]) -> ScoredSequence:
    """vLLM's prompt_logprobs shape -> ScoredSequence (ids are the JSON keys)."""
    pl = choice.get("prompt_logprobs")
    n = len(ids)
    if not isinstance(pl, list) or len(pl) < n:
        raise NotScored("the response carries no prompt_logprobs for the prompt tokens")
    out = ScoredSequence(list(ids), [None] * n, [None] * n, [None] * n)
    for i in range(1, n):
        if not isinstance(pl[i], dict):
            raise NotScored(f"no prompt_logprobs at prompt position {i}")
        entries = []
        for key, v in pl[i].items():
            lp, text = (v.get("logprob"), v.get("decoded_token")) if isinstance(v, dict) else (v, None)
            tid = int(key) if str(key).lstrip("-").isdigit() else None
            entries.append((text, tid, float(lp)))
            if tid == ids[i]:
                out.texts[i], out.logprobs[i] = text, float(lp)
        out.top[i] = entries
    return out


PARSERS: dict[str, Callable[[dict, list[int]], ScoredSequence]] = {"echo": parse_echo,
                                                                    "prompt_logprobs": parse_prompt_logprobs}


def sender(teacher, api: str, ids: list[int]) -> Callable[[dict], ScoredSequence]:
    """POST /v1/completions through the teacher's client, then parse (raises inside the retry loop)."""
    def send(req: dict) -> ScoredSequence:
        body = {k: v for k, v in req.items() if k not in EXTRA_FIELDS}
        extra = {k: req[k] for k in EXTRA_FIELDS if k in req}
        completion = teacher._client.completions.create(**body, extra_body=extra or None)
        choices = completion.model_dump().get("choices") or []
        if not choices:
            raise ValueError("the completion has no choices")  # malformed: retried
        return PARSERS[api](choices[0], ids)
    return send


def probe_scoring(teacher) -> ScoreSupport:
    """Which shape the server scores given tokens in, asking each with `teacher.score_top_logprobs` (so a k the
    server caps lower fails here, with its reason). An explicit score_api that fails is still reported with the
    shape that works instead."""
    wanted = str(teacher.score_api)
    order = list(APIS) if wanted == "auto" else [wanted, *(a for a in APIS if a != wanted)]
    sup = ScoreSupport()
    for api in order:
        res = teacher._call(score_request(teacher.model_name, PROBE_IDS, teacher.score_top_logprobs, api),
                            sender(teacher, api, PROBE_IDS))
        if api == "echo" and res.response is None and res.status in (400, 422):  # refuses max_tokens=0
            retry = teacher._call(score_request(teacher.model_name, PROBE_IDS, teacher.score_top_logprobs, api, 1),
                                  sender(teacher, api, PROBE_IDS))
            if retry.response is not None:
                res, sup.max_tokens = retry, 1
        if res.response is not None:
            sup.works.append(api)
            break
        sup.failures[api] = res.error or "no answer"
        if res.status is None and (res.error or "").startswith(("connection error", "timeout")):
            break  # the server is not there: asking the other shape says nothing new
    if sup.works and (wanted == "auto" or sup.works[0] == wanted):
        sup.api = sup.works[0]
    log.info("teacher %s at %s: scores given tokens with %s%s", teacher.name, teacher.url, sup.api or "nothing",
             f" ({sup.why()})" if sup.failures else "")
    return sup


@dataclass
class ScoreStats:
    """Totals of this process: scored sequences, the positions scored in them (all but each first token), the
    sequences that failed, and the wall seconds spent waiting on the server."""

    sequences: int = 0
    tokens: int = 0
    failed: int = 0
    seconds: float = 0.0


def score(teacher, seqs: list[list[int]]) -> list[ScoredSequence | None]:
    """Score each id sequence (in parallel, at most `teacher.concurrency` requests in flight, each with the
    teacher's retries); None for a sequence that still failed. Every one failing raises UserError."""
    sup = teacher.scoring
    if sup.api is None:
        raise UserError(f"teacher '{teacher.name}': {teacher.url} does not score given tokens ({sup.why()})")
    if not seqs:
        return []
    t0 = time.perf_counter()
    k = teacher.score_top_logprobs

    def one(ids: list[int]):
        return teacher._call(score_request(teacher.model_name, ids, k, sup.api, sup.max_tokens),
                             sender(teacher, sup.api, ids))

    with ThreadPoolExecutor(max_workers=min(teacher.concurrency, len(seqs)), thread_name_prefix="openai-score") as pool:
        results = list(pool.map(one, seqs))
    out = [r.response for r in results]
    stats = teacher.score_stats
    stats.seconds += time.perf_counter() - t0
    stats.sequences += sum(o is not None for o in out)
    stats.tokens += sum(len(ids) - 1 for ids, o in zip(seqs, out) if o is not None)
    failed = [r for r in results if r.response is None]
    stats.failed += len(failed)
    if len(failed) == len(out):
        raise UserError(teacher._fatal(f"all {len(seqs)} scoring requests to {teacher.url} failed", failed[-1]))
    if failed:
        log.warning("teacher %s: %d of %d scoring requests failed after retries (first: %s)", teacher.name,
                    len(failed), len(out), failed[0].error)
    return out
