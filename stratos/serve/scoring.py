r"""Log-probs of GIVEN tokens: the model's distribution at every prompt position, in the two shapes servers use.

Scoring a token sequence $x_{1..T}$ is one forward over all of it (no sampling): row $i$ of the logits predicts
$x_{i+1}$, so position $i \ge 2$ gets

$$ \log p(x_i \mid x_{<i}) \quad\text{and the top-k}\quad \{(v, \log p(v \mid x_{<i}))\} $$

at T = 1 (the model's own log-softmax, before any sampling temperature, as OpenAI and vLLM report it). The
first token has no context, so its entry is null in both shapes:

  echo             legacy /v1/completions `echo=true, logprobs=k`: `choices[i].logprobs` covers the prompt tokens
                   first, {tokens, token_logprobs, top_logprobs (text -> logprob), text_offset}; as in OpenAI's
                   API, each top_logprobs dict holds the k best plus the given token when it is not among them
                   (up to k + 1 entries; tokens with the same text collapse into one key, the likelier kept)
  prompt_logprobs  vLLM's extra field `prompt_logprobs=k`: `choices[i].prompt_logprobs` = [null, {token id (a
                   JSON string): {logprob, rank, decoded_token}}, ...], again the k best (ranks 1..k) plus the
                   given token with its vocabulary rank when it is not among them

Requests are checked in stratos/serve/protocol.py and handlers.py (k <= the server's `max_logprobs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS_PER_CHUNK = 256  # float64 log-softmax over (chunk, V) at a time: bounded memory for long prompts


@dataclass
class PromptScores:
    """Positions 1..T-1 of a prompt (position 0 has no context): the given token's log-prob and vocabulary rank
    (1 = the likeliest), and the top-k (id, log-prob), best first."""

    logprobs: list[float]
    ranks: list[int]
    top: list[list[tuple[int, float]]]


def score_prompt(engine, ids: list[int], k: int) -> PromptScores:
    """One forward over `ids` (engine.logits: (T, V)), then per position the given token's log-prob, rank, top-k."""
    logits = engine.logits(ids)  # (T, V): row i predicts ids[i + 1]
    out = PromptScores([], [], [])
    nxt = np.asarray(ids[1:], dtype=np.int64)  # (T-1,)
    for lo in range(0, len(nxt), ROWS_PER_CHUNK):
        hi = min(lo + ROWS_PER_CHUNK, len(nxt))
        z = logits[lo:hi].astype(np.float64)  # (C, V)
        lp = z - z.max(-1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
        given = lp[np.arange(hi - lo), nxt[lo:hi]]  # (C,)
        out.logprobs += given.tolist()
        out.ranks += (1 + (lp > given[:, None]).sum(-1)).tolist()
        if k > 0:
            top = np.argpartition(-lp, k - 1, axis=-1)[:, :k]  # (C, k), unordered
            order = np.argsort(-np.take_along_axis(lp, top, -1), axis=-1, kind="stable")
            top = np.take_along_axis(top, order, -1)
            out.top += [[(int(t), float(row[t])) for t in row_top] for row, row_top in zip(lp, top)]
        else:
            out.top += [[] for _ in range(len(lp))]
    return out


def echo_logprobs(engine, ids: list[int], scores: PromptScores) -> dict:
    """The prompt part of a legacy completion's `logprobs` (OpenAI's echo shape); the first entry is null."""
    out: dict = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    offset = 0
    for i, tok in enumerate(ids):
        text = engine.token_text(tok)
        out["tokens"].append(text)
        out["text_offset"].append(offset)
        offset += len(text)
        if i == 0:
            out["token_logprobs"].append(None)
            out["top_logprobs"].append(None)
            continue
        given = scores.logprobs[i - 1]
        top: dict[str, float] = {}
        for t, lp in [*scores.top[i - 1], (tok, given)]:
            top.setdefault(engine.token_text(t), lp)  # best first: a later token with the same text is dropped
        out["token_logprobs"].append(given)
        out["top_logprobs"].append(top)
    return out


def prompt_logprobs_field(engine, ids: list[int], scores: PromptScores) -> list:
    """vLLM's `prompt_logprobs`: [None, {"<id>": {logprob, rank, decoded_token}}, ...] (ids as JSON keys)."""
    out: list = [None]
    for i, tok in enumerate(ids[1:]):
        entry = {str(t): {"logprob": lp, "rank": r + 1, "decoded_token": engine.token_text(t)}
                 for r, (t, lp) in enumerate(scores.top[i])}
        entry.setdefault(str(tok), {"logprob": scores.logprobs[i], "rank": scores.ranks[i],
                                    "decoded_token": engine.token_text(tok)})
        out.append(entry)
    return out
