r"""A served teacher's scores of the student's rollouts as top-k teacher rows (on-policy KD, scorer `logprobs`).

After the student samples (stratos/distill/rollouts.py), each rollout row $x$ = prompt ($P$ tokens) + sample is
sent to the teacher's server (`teacher.score`, stratos/models/openai_scoring.py), which reports at every position
$i$ the teacher's log-probs at T = 1. Only the rows that predict sampled tokens are kept: input row $t$
($P - 1 \le t \le n - 2$) predicts $x_{t+1}$ and takes the server's entry $i = t + 1$; prompt positions are not
supervised.

Each entry becomes an id of the student's vocabulary:
  prompt_logprobs  the id the server sent (an id outside the student's vocabulary maps to none)
  echo             the given token: the id that was sent; the others by vLLM's `token_id:N` form, else by their
                   text (blackbox_kd.TokenIds, special tokens included); a text that no token, or several
                   tokens, of the vocabulary decode to maps to none
An entry that maps to no id gives its mass to the tail bucket, so a row is the offline store's format: the
$k' = \min(k + 1, V)$ best mapped entries (the k best plus the given token when outside them) with their
log-probs, FILL entries of distinct ids after them, and the tail $\log(1 - \sum_{mapped} p)$ ($-\infty$ when
the entries hold all the mass, as at k = V). The loss is the bucketed forward KL of `topk_kd_loss` at T = 1.

One vocabulary: the server must read the student's ids as the student does. `check_vocab` scores some of the
student's own training rows and compares the server's text of every token with the student's (its decoded text,
its raw piece, or `token_id:N`); below MIN_MATCH of them agreeing the tokenizers differ, and on-policy KD is
refused with a one-line UserError.
"""

from __future__ import annotations

import logging
import math

import torch

from stratos.distill.blackbox_kd import FILL, TokenIds
from stratos.distill.examples import IGNORE, collate_topk
from stratos.errors import bad_value

log = logging.getLogger("stratos")

MIN_MATCH = 0.95  # share of scored tokens whose server text must match the student's for one vocabulary


class ServedScores:
    """(teacher, the student's tokenizer) -> teacher rows of the sampled positions; see the module docstring."""

    def __init__(self, teacher, tokenizer) -> None:
        self.teacher, self.tokenizer = teacher, tokenizer
        self.vocab = len(tokenizer)
        self.width = min(int(teacher.score_top_logprobs) + 1, self.vocab)
        self.token_ids = TokenIds(tokenizer)
        self.special = {tokenizer.decode([i]): i for i in (getattr(tokenizer, "all_special_ids", None) or [])}

    # ------------------------------------------------------------------ one vocabulary
    def _same_token(self, text: str, i: int) -> bool:
        return text in (self.tokenizer.decode([i]), self.tokenizer.convert_ids_to_tokens(i), f"token_id:{i}")

    def check_vocab(self, rows: list[list[int]]) -> dict:
        """Score `rows` (the student's ids) and refuse when the server's token texts disagree with the student's."""
        scored = [s for s in self.teacher.score(rows) if s is not None]
        pairs = [(t, i) for s in scored for t, i in zip(s.texts, s.ids) if t is not None]
        bad = [(t, i) for t, i in pairs if not self._same_token(t, i)]
        share = 1 - len(bad) / len(pairs) if pairs else 1.0
        record = {"checked_tokens": len(pairs), "matching_share": round(share, 4)}
        if not pairs:
            log.warning("served teacher %s sent no token texts: its vocabulary cannot be checked", self.teacher.name)
        elif share < MIN_MATCH:
            t, i = bad[0]
            raise bad_value("student.name_or_path", getattr(self.tokenizer, "name_or_path", None),
                            f"a checkpoint whose tokenizer is the served teacher's: the server at {self.teacher.url} "
                            f"reads {len(bad)} of {len(pairs)} of the student's token ids as other text (id {i}: "
                            f"server {t!r}, student {self.tokenizer.decode([i])!r})")
        return record

    # ------------------------------------------------------------------ entries -> rows
    def _entries(self, seq, i: int) -> dict[int, float]:
        """Position i's entries as {student id: log-prob}, the given token first; unmapped ones left out."""
        given = seq.ids[i]
        out = {given: float(seq.logprobs[i])} if seq.logprobs[i] is not None else {}
        for text, tid, lp in seq.top[i]:
            if tid is None:
                if text is None or text == seq.texts[i]:  # the given token (its value is token_logprobs')
                    continue
                tid = self.special.get(text)
                if tid is None and text not in self.token_ids.ambiguous:
                    tid = self.token_ids.by_text.get(text)
            if tid is not None and 0 <= tid < self.vocab:
                out.setdefault(tid, float(lp))
        return out

    def rows(self, seq, start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher rows predicting seq.ids[start:], i.e. entries start..n-1: ids (m, w), logprobs (m, w), tail (m,)."""
        m, w = len(seq.ids) - start, self.width
        ids = torch.zeros(m, w, dtype=torch.long)
        lp = torch.full((m, w), FILL, dtype=torch.float32)
        tail = torch.empty(m, dtype=torch.float32)
        for r in range(m):
            entries = sorted(self._entries(seq, start + r).items(), key=lambda x: -x[1])[:w]
            seen = {i for i, _ in entries}
            pad = (j for j in range(self.vocab) if j not in seen)  # distinct ids for the FILL entries
            ids[r] = torch.tensor([i for i, _ in entries] + [next(pad) for _ in range(w - len(entries))])
            lp[r, : len(entries)] = torch.tensor([v for _, v in entries])
            mass = sum(math.exp(v) for _, v in entries)
            tail[r] = math.log1p(-mass) if mass < 1 - 1e-6 else -math.inf
        return ids, lp, tail

    def __call__(self, seqs: list[list[int]], starts: list[int]) -> list[tuple | None]:
        """Rows (`rows`) per sequence; None where the server failed after its retries (the sampler counts both)."""
        return [None if got is None else self.rows(got, s) for got, s in zip(self.teacher.score(seqs), starts)]


def widen(ids: torch.Tensor, lp: torch.Tensor, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., k) rows -> (..., w) rows, w >= k: FILL entries whose ids are distinct from each row's own."""
    k = ids.shape[-1]
    if w == k:
        return ids, lp
    flat = ids.reshape(-1, k)
    used = torch.zeros(flat.shape[0], w + k, dtype=torch.bool).scatter_(1, flat.clamp(max=w + k - 1), True)
    free = torch.argsort(used.float(), dim=1, stable=True)[:, : w - k]  # the smallest unused ids, per row
    new_ids = torch.cat([flat, free], 1).reshape(*ids.shape[:-1], w)
    new_lp = torch.cat([lp, torch.full((*lp.shape[:-1], w - k), FILL, dtype=lp.dtype)], -1)
    return new_ids, new_lp


def rollout_topk(batch: dict, rows: list[tuple[list[int], list[int]]], scored: dict[int, tuple],
                 width: int) -> dict[str, torch.Tensor]:
    """topk_ids / topk_logprobs (B, T, w) and topk_tail (B, T) of the rebuilt batch `rows` (input ids, labels):
    rollout row r takes `scored[r]` = (start P, ids (m, k'), logprobs, tail) at positions P-1 .. P+m-2; a data
    row keeps the batch's own teacher rows (black-box token KD) or gets a one-hot teacher at its labels (the
    bucketed KL is then CE); positions no loss reads hold all their mass in the tail."""
    k_data = batch["topk_ids"].shape[-1] if "topk_ids" in batch else 0
    w = max(width, k_data)
    tops = []
    for r, (x, _) in enumerate(rows):
        if r in scored:
            start, ids, lp, tail = scored[r]
            ids, lp = widen(ids, lp, w)
            n = len(x)
            at = slice(start - 1, start - 1 + len(tail))  # the rows predicting the sampled tokens
            nan = float("nan")  # rows of no sampled token: left to collate_topk
            full = (torch.zeros(n, w, dtype=torch.long), torch.full((n, w), nan), torch.full((n,), nan))
            full[0][at], full[1][at], full[2][at] = ids, lp, tail
            tops.append(full)
        elif k_data:
            n = len(x)
            ids, lp = widen(batch["topk_ids"][r, :n].cpu(), batch["topk_logprobs"][r, :n].cpu().float(), w)
            tops.append((ids, lp, batch["topk_tail"][r, :n].cpu().float()))
        else:
            tops.append(None)
    width_T = max(len(x) for x, _ in rows)
    labels = torch.full((len(rows), width_T), IGNORE, dtype=torch.long)
    for r, (_, y) in enumerate(rows):
        labels[r, : len(y)] = torch.tensor(y)
    dev = batch["input_ids"].device
    return {k: v.to(dev) for k, v in collate_topk(tops, labels, w).items()}
