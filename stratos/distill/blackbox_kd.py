r"""Token-level KD from a black-box teacher: the top-k log-probs an OpenAI-compatible server returns.

Sequence-level KD keeps the teacher's verified rationale (stratos/distill/rejection.py). When the server
also sent logprobs (`teacher.top_logprobs=k`), generated token i comes with the token the teacher chose,
$y_i$, and its top-k alternatives $\{(v, \log p_T(v \mid x, y_{<i}))\}$. If the student shares the
served model's vocabulary, each token maps back to an id, so the student trains on the exact ids the
teacher produced (not a re-tokenisation of its text, which may split differently), every position with
the teacher's sparse distribution: top-k log-probs plus one tail bucket $\log(1 - \sum_{topk} p)$. That
is the offline store's format, so the loss is the bucketed forward KL of `topk_kd_loss`:

    loss = (1 - w) * CE + w * D_K(p_T || q_S)      at T = 1 (servers report log-probs at T = 1)

Tokens are matched by their bytes (the `bytes` field: exact even for half a UTF-8 character), by vLLM's
`token_id:N` form (`--return-tokens-as-token-ids`), else by their text. A top-k entry that maps to no id
gives its mass to the tail. A rationale is *aligned* when every chosen token maps and the ids decode
back to its text; the rest train with CE only (their rows get a one-hot teacher at the label, where the
bucketed KL equals CE). Below `MIN_ALIGNED` aligned rationales the vocabularies differ: token-level KD is
refused, with the reason, and sequence-level KD is used alone. The end-of-sequence position is one-hot
too: the server sends no logprobs for the stop it chose.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from stratos.models.textstream import token_bytes_fn

log = logging.getLogger("stratos")

MIN_ALIGNED = 0.9  # share of rationales whose tokens must map for token-level KD to be used
FILL = -1e4  # log-prob of a padding entry: exp() is 0, and unlike -inf it keeps 0 * (FILL - x) finite


@dataclass
class TeacherTopK:
    """A rationale as the teacher's token ids, with its top-k rows: ids (n, k), logprobs (n, k), tail (n,)."""

    target_ids: list[int]
    ids: torch.Tensor
    logprobs: torch.Tensor
    tail: torch.Tensor


@dataclass
class TokenKDReport:
    used: bool
    reason: str
    k: int
    rationales: int = 0
    aligned: int = 0
    unmapped_tokens: int = 0
    tail_mass_mean: float | None = None

    def as_dict(self) -> dict:
        return {"used": self.used, "reason": self.reason, "k": self.k, "rationales": self.rationales,
                "aligned": self.aligned, "unmapped_tokens": self.unmapped_tokens, "tail_mass_mean": self.tail_mass_mean}


class TokenIds:
    """Token (text, bytes) as a server reports it -> the id in `tokenizer`'s vocabulary, or None."""

    def __init__(self, tokenizer) -> None:
        as_bytes = token_bytes_fn(tokenizer)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self.by_bytes: dict[bytes, int] = {}
        self.by_text: dict[str, int] = {}
        self.ambiguous: set[str] = set()  # texts several ids decode to (e.g. U+FFFD for half characters)
        for i in range(len(tokenizer)):
            if i in special:
                continue
            self.by_bytes.setdefault(bytes(as_bytes(i)), i)
            text = tokenizer.decode([i])
            if text in self.by_text:
                self.ambiguous.add(text)
            self.by_text.setdefault(text, i)
        self.vocab = len(tokenizer)

    def __call__(self, token: str, raw: list[int] | None) -> int | None:
        if token.startswith("token_id:") and token[9:].isdigit():  # vLLM --return-tokens-as-token-ids
            i = int(token[9:])
            return i if i < self.vocab else None
        if raw is not None:
            return self.by_bytes.get(bytes(raw))
        return self.by_text.get(token)


def align(tokenizer, token_ids: TokenIds, text: str, tokens: list, top: list, k: int) -> tuple[TeacherTopK | None, int]:
    """(the rationale `text` as the teacher's ids + top-k rows, or None if it does not align; unmapped count).

    `tokens[i]` / `top[i]` = (token, logprob, bytes) of generated token i / its top-k. `text` is the kept
    (stripped) rationale, so whitespace-only tokens at either end are dropped first; the teacher's ids
    are kept as they are (a first token " Answer" keeps its space).
    """
    ids = [token_ids(t, b) for t, _, b in tokens]
    unmapped = sum(i is None for i in ids)
    if unmapped:
        return None, unmapped
    lo, hi = 0, len(ids)
    while lo < hi and not tokenizer.decode([ids[lo]]).strip():
        lo += 1
    while hi > lo and not tokenizer.decode([ids[hi - 1]]).strip():
        hi -= 1
    ids = ids[lo:hi]
    # a token may carry the whitespace that strip() removed (" Answer"): compare stripped texts
    if not ids or tokenizer.decode(ids, clean_up_tokenization_spaces=False).strip() != text:
        return None, 0
    n = len(ids)
    out_ids = torch.zeros(n, k, dtype=torch.long)
    out_lp = torch.full((n, k), FILL, dtype=torch.float32)
    tail = torch.empty(n, dtype=torch.float32)
    for r, alts in enumerate(top[lo:hi]):
        seen: dict[int, float] = {}
        for t, lp, b in alts:
            i = token_ids(t, b)
            if i is not None and i not in seen:
                seen[i] = float(lp)
        best = sorted(seen.items(), key=lambda x: -x[1])[:k]
        pad = (j for j in range(token_ids.vocab) if j not in seen)  # distinct ids for the FILL entries
        row = [i for i, _ in best] + [next(pad) for _ in range(k - len(best))]
        out_ids[r] = torch.tensor(row)
        out_lp[r, : len(best)] = torch.tensor([lp for _, lp in best])
        mass = sum(math.exp(lp) for _, lp in best)
        tail[r] = math.log1p(-mass) if mass < 1 - 1e-6 else -math.inf
    return TeacherTopK(ids, out_ids, out_lp, tail), 0


def attach_teacher_topk(tokenizer, examples: list, k: int, enabled: bool = True) -> TokenKDReport:
    """Align every example carrying `teacher_logprobs` = (tokens, top); set `example.teacher_topk`.

    Returns the report (`used` False with the reason when logprobs are absent, disabled, or the
    vocabularies do not match); examples are left without `teacher_topk` unless it is used.
    """
    raw = [e for e in examples if e.teacher_logprobs is not None]
    if not enabled:
        return TokenKDReport(False, "strategy.alignment.blackbox_kd=false", k, len(raw))
    if not raw or k <= 0:
        return TokenKDReport(False, "the teacher returned no logprobs (teacher.top_logprobs=0, or the server "
                                    "does not offer them): sequence-level KD only", k, len(raw))
    token_ids = TokenIds(tokenizer)
    rep = TokenKDReport(False, "", k, len(raw))
    tails = []
    for e in raw:
        got, unmapped = align(tokenizer, token_ids, e.target, *e.teacher_logprobs, k)
        rep.unmapped_tokens += unmapped
        if got is not None:
            rep.aligned += 1
            e.teacher_topk = got
            tails.append(got.tail.exp().mean().item())
    share = rep.aligned / len(raw)
    if share < MIN_ALIGNED:
        for e in raw:
            e.teacher_topk = None
        rep.reason = (f"only {rep.aligned}/{len(raw)} teacher rationales map onto the student's vocabulary "
                      f"({rep.unmapped_tokens} tokens unknown): the teacher's tokenizer differs, so token-level KD "
                      f"is refused and sequence-level KD is used alone")
        log.warning("black-box token KD: %s", rep.reason)
        return rep
    rep.used, rep.tail_mass_mean = True, round(sum(tails) / len(tails), 4)
    rep.reason = (f"{rep.aligned}/{len(raw)} teacher rationales carry top-{k} log-probs on the student's vocabulary: "
                  f"token-level KD (forward KL, T=1) on them, CE on the rest")
    log.info("black-box token KD: %s", rep.reason)
    return rep
