r"""Student rollouts for on-policy KD: sample, then swap the sampled rows into the training batch.

Per training step, with B rows of which the data made right-padded (input_ids, labels):

  1. choose rows    row r is replaced with probability `rate` (lambda); corpus rows never are
  2. sample         the student completes each chosen row's prompt (the tokens before its first supervised
                    label) with its KV cache, at `temperature`, up to `max_new_tokens`, cut after the first <eos>
  3. score          `logits`: the row becomes prompt + sample with the loss on the sample's tokens; the
                    module's live teacher then scores exactly those tokens (KD only on these rows)
                    `logprobs`: the same row, sent to the served teacher (stratos/distill/served_scores.py), whose
                    top-k log-probs of the sampled positions become the batch's topk_* rows (KD only on these
                    rows, bucketed forward KL at T = 1); a row the server fails on after its retries goes back
                    to its data row
                    `verifier`: the task judges the sample's text line by line (`Task.judge`); the row becomes
                    prompt + the sample's correct leading lines + the engine's continuation, CE on all of it
  4. rebuild        the batch is right-padded again and carries `on_policy` (B,) bool (and, scored by a server,
                    topk_ids / topk_logprobs (B, T, k') and topk_tail (B, T) for every row)
  5. loss           `on_policy_losses` (end of this file): data rows (1 - w) CE + w KD, rollout rows KD alone,
                    one per-token mean (the module calls it; routing.routed_kd per teacher with several)

Determinism and resume: the row choice and the samples come from an RNG seeded by (seed, global step, rank)
only -- never the global RNG -- so a run resumed from a checkpoint (same weights, same step) draws exactly the
samples an uninterrupted run draws, and two runs with one seed draw the same ones.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from stratos.models.generate import left_padded

IGNORE = -100


def rollout_seed(seed: int, step: int, rank: int = 0) -> int:
    """A 63-bit seed that is a pure function of (seed, global step, rank)."""
    digest = hashlib.sha256(f"stratos-rollout:{seed}:{step}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def prompt_lengths(labels: torch.Tensor, mask: torch.Tensor) -> list[int]:
    """Per row, the tokens before the first supervised label (labels aligned with input_ids), (B, T) -> [B]."""
    sup = labels != IGNORE  # (B, T)
    first = torch.where(sup.any(1), sup.int().argmax(1), mask.sum(1))  # (B,)
    return first.tolist()


@torch.inference_mode()
def sample(model, prompts: list[list[int]], *, max_new_tokens: int, temperature: float, seed: int, pad_id: int,
           eos_id: int) -> list[list[int]]:
    """The student's sampled completions of `prompts` (token ids, each cut after its first <eos>, which it keeps).

    Prompts are left-padded so the new tokens line up (position ids count real tokens only); one prefill, then one
    cached step per token, each asking the model for the last position's logits only (`logits_to_keep=1`: never
    the (B, T_p, V) prefill logits), sampling from the full distribution at `temperature` (no top-k / top-p) by
    `draw`, with a generator seeded by `seed`: the draw depends on `seed` alone and the global RNG is not touched.
    Stops once every row has emitted <eos>. A plain loop rather than HF `generate`: on a 2-core CPU (tiny_llama,
    16 rows x 192 tokens) `generate`'s per-step overhead made it 2.7x slower (17.6 s vs 6.5 s, measured).
    """
    if not prompts:
        return []
    B = len(prompts)
    device = next(model.parameters()).device
    ids, mask = left_padded(prompts, pad_id)  # (B, T_p) each
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T_p)
    g = torch.Generator(device=device).manual_seed(int(seed))
    was_training = model.training
    model.eval()
    try:
        out = _forward(model, ids, mask, pos, None)
        nxt = pos[:, -1:] + 1  # (B, 1)
        done = torch.zeros(B, dtype=torch.bool, device=device)
        new = []
        for i in range(max_new_tokens):
            tok = draw(out.logits[:, -1], temperature, g)  # (B, 1)
            new.append(tok)
            done |= tok[:, 0] == eos_id
            if bool(done.all()) or i == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones_like(tok)], 1)
            out = _forward(model, tok, mask, nxt, out.past_key_values)
            nxt = nxt + 1
    finally:
        model.train(was_training)
    cut = []
    for row in torch.cat(new, 1).tolist():  # (B, <= max_new_tokens)
        end = row.index(eos_id) + 1 if eos_id in row else len(row)
        cut.append(row[:end])
    return cut


BLOCK = 256  # tokens per block of the two-level draw
TWO_LEVEL_FROM = 4096  # vocabularies at least this large draw in two levels (below, one cumsum is cheaper)


def draw(logits: torch.Tensor, temperature: float, generator: torch.Generator, block: int = 0) -> torch.Tensor:
    r"""One token per row from $\mathrm{softmax}(z / T)$, by inverting the CDF with one uniform per row.

    $$i = \min\{\, i : C_i > u\, C_{V-1} \},\quad C_i = \sum_{j \le i} e_j,\quad e_j = e^{(z_j - \max z) / T},\quad
      u \sim U[0, 1)$$
    picks token i with probability $e_i / \sum_j e_j$ = softmax(z / T)_i: the same distribution as
    `torch.multinomial(softmax(z / T), 1)`, though not the same tokens for a seed. The reason is cost: the
    multinomial draws one exponential per vocabulary entry (its CPU kernel samples argmax(p / q), q ~ Exp(1)),
    B * V random numbers per step, while this draws B. At V = 32,000, B = 16, one thread: 1.0 ms vs 20 ms a
    step (busy 2-core machine), where the student's LM head takes ~4 ms.

    Two levels for large vocabularies (V >= TWO_LEVEL_FROM, or `block` > 0): the weights are cut into blocks of
    `block` tokens (BLOCK; the last one padded with zero weights), the uniform first picks a block k by the prefix
    sums of the block sums $S_k$, then a token inside block k by that block's own prefix sums, the remainder
    $u C - \sum_{k' < k} S_{k'}$ rescaled to the block's own total. P(token i in block k) = (S_k / C) (e_i / S_k)
    = e_i / C, the same distribution; the prefix sums run over V / block + block entries instead of V. A sequential
    prefix sum over V doubles in fp64 was most of a draw: at V = 32,000 (B = 16, one thread) 1.02 -> 0.58 ms, at
    V = 151,936 5.4 -> 2.3 ms; at V = 4,096 the two cost the same (0.13-0.14 ms), below it one level is cheaper.

    Precision: the weights $e_j$ are fp32 (like the multinomial's probabilities), prefix sums fp64, block sums
    fp32 sums of <= `block` weights (relative error ~1e-7, the weights' own rounding), so rounding moves no
    visible mass between tokens even at V = 152k. A token with $e_i = 0$ is never drawn (it does not raise C), not
    even when u * C rounds up to the total (clamped to the last block and token with mass).
    logits (B, V) -> (B, 1) long.
    """
    B, V = logits.shape
    block = int(block) or (BLOCK if V >= TWO_LEVEL_FROM else V)
    nb = -(-V // block)  # blocks
    z = logits.float()
    e = torch.empty((B, nb * block), dtype=torch.float32, device=z.device)  # (B, nb * block) weights
    torch.sub(z, z.amax(-1, keepdim=True), out=e[:, :V])  # <= 0: exp cannot overflow, whatever the temperature
    if float(temperature) != 1.0:
        e[:, :V].div_(float(temperature))
    e[:, V:] = -math.inf  # padding: weight 0
    e.exp_()  # max 1
    if nb == 1:  # one level: the prefix sums of all V weights
        cdf = e.double().cumsum_(-1)  # (B, V) fp64
        u = _uniform(cdf, generator)
        return _invert(cdf, u)
    parts = e.view(B, nb, block)
    cb = parts.sum(-1).double().cumsum_(-1)  # (B, nb) fp64 prefix sums of the block sums
    u = _uniform(cb, generator)  # (B, 1) in [0, C)
    k = _invert(cb, u)  # (B, 1) the block
    lo = torch.where(k > 0, cb.gather(1, (k - 1).clamp(min=0)), 0.0)  # (B, 1) mass before block k
    inner = parts.gather(1, k[:, :, None].expand(B, 1, block)).squeeze(1).double().cumsum_(-1)  # (B, block)
    r = (u - lo) / (cb.gather(1, k) - lo) * inner[:, -1:]  # the remainder, in the block's own prefix sums
    return k * block + _invert(inner, r)


def _uniform(cdf: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """u * C: one uniform per row scaled to the row's total (the last prefix sum), (B, n) -> (B, 1) fp64."""
    total = cdf[:, -1:]
    if not bool(torch.isfinite(total).all()):  # multinomial would raise too
        raise ValueError("cannot sample: a row of the student's logits holds NaN or +inf, or is all -inf")
    return torch.rand(total.shape, generator=generator, dtype=torch.float64, device=cdf.device) * total


def _invert(cdf: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The first index whose prefix sum exceeds x, at most the last index with mass, (B, n), (B, 1) -> (B, 1)."""
    last = torch.searchsorted(cdf, cdf[:, -1:].contiguous())  # the first index where the sum reaches its total
    return torch.minimum(torch.searchsorted(cdf, x.contiguous(), right=True), last)


def _forward(model, ids, mask, pos, past):
    """One cached forward; only the last position's logits (no (B, T, V) prefill logits where the model allows)."""
    kw = dict(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True)
    try:
        return model(**kw, logits_to_keep=1)
    except TypeError:  # a model without `logits_to_keep`
        return model(**kw)


@dataclass
class RolloutStats:
    """Totals of this process since it started (the module logs them as metrics)."""

    rows: int = 0  # rows replaced by rollouts
    rows_seen: int = 0  # rows the sampler was offered
    sampled_tokens: int = 0
    seconds: float = 0.0  # spent sampling
    lines_ok: int = 0  # verifier: leading lines judged right ...
    lines: int = 0  # ... of the lines judged
    correct: int = 0  # verifier: rollouts right to the end
    scored_tokens: int = 0  # logprobs: sampled tokens the served teacher scored ...
    score_seconds: float = 0.0  # ... and the wall seconds spent waiting on it
    score_failed: int = 0  # logprobs: rollouts the server failed on (trained as their data rows instead)
    aligned: int = 0  # cross-tokenizer: sampled tokens that start an aligned span (a KD_x pair) ...
    alignable: int = 0  # ... of the sampled tokens of the rollouts the teacher read

    @property
    def tokens_per_s(self) -> float:
        return self.sampled_tokens / self.seconds if self.seconds > 0 else 0.0

    def as_metrics(self) -> dict[str, float]:
        out = {"on_policy/share": self.rows / max(1, self.rows_seen), "on_policy/sampled_tokens": self.sampled_tokens,
               "on_policy/tokens_per_s": round(self.tokens_per_s, 1)}
        if self.lines:
            out["on_policy/lines_ok_share"] = round(self.lines_ok / self.lines, 4)
            out["on_policy/correct_share"] = round(self.correct / max(1, self.rows), 4)
        if self.alignable:
            out["on_policy/aligned_share"] = round(self.aligned / self.alignable, 4)
        if self.scored_tokens or self.score_failed:
            out["on_policy/scored_tokens"] = self.scored_tokens
            out["on_policy/score_seconds"] = round(self.score_seconds, 3)
            out["on_policy/scored_tokens_per_s"] = round(self.scored_tokens / max(self.score_seconds, 1e-9), 1)
            out["on_policy/score_failed"] = self.score_failed
        return out


@dataclass
class RolloutSampler:
    """Replaces a share `rate` of each training batch by student samples (see the module docstring).

    `judge` (verifier scorer only): (dataset index, sampled text) -> (corrected text, leading lines right, lines
    judged, rollout right to the end); `tokenizer` turns the corrected text back into ids.
    `scores` (logprobs scorer only): served_scores.ServedScores, (id rows, prompt lengths) -> teacher rows.
    """

    rate: float
    temperature: float
    max_new_tokens: int
    seed: int
    pad_id: int
    eos_id: int
    scorer: str = "logits"  # logits | verifier | logprobs
    max_positions: int = 0  # the student's context (0 = unlimited): prompt + sample never exceed it
    tokenizer: object = None
    judge: Optional[Callable[[int, str], tuple[str, int, int, bool]]] = None
    scores: Optional[Callable[[list[list[int]], list[int]], list]] = None
    align: Optional[Callable] = None  # cross-tokenizer KD: xtok_rollouts.RolloutAligner (teacher ids + pairs)
    rank: int = 0
    stats: RolloutStats = field(default_factory=RolloutStats)

    def choose(self, batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        """(B,) bool: the rows replaced at `step`, a function of (seed, step, rank) alone."""
        B = batch["input_ids"].shape[0]
        g = torch.Generator().manual_seed(rollout_seed(self.seed, step, self.rank))
        pick = torch.rand(B, generator=g) < self.rate
        if "is_corpus" in batch:
            pick &= ~batch["is_corpus"].cpu()
        return pick

    def __call__(self, model, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """The batch with the chosen rows replaced (a new dict; `on_policy` (B,) marks them)."""
        pick = self.choose(batch, step)
        self.stats.rows_seen += len(pick)
        ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
        rows = [(ids[r, : int(mask[r].sum())].tolist(), labels[r, : int(mask[r].sum())].tolist())
                for r in range(ids.shape[0])]
        chosen = pick.nonzero().squeeze(1).tolist()
        topk = None
        if chosen:
            n_prompt = prompt_lengths(labels, mask)
            prompts = [rows[r][0][: n_prompt[r]] for r in chosen]
            budget = self.max_new_tokens
            if self.max_positions:
                budget = max(1, min(budget, self.max_positions - max(len(p) for p in prompts)))
            t0 = time.perf_counter()
            new = sample(model, prompts, max_new_tokens=budget, temperature=self.temperature,
                         seed=rollout_seed(self.seed, step, self.rank) ^ 1, pad_id=self.pad_id, eos_id=self.eos_id)
            self.stats.seconds += time.perf_counter() - t0
            self.stats.sampled_tokens += sum(len(x) for x in new)
            self.stats.rows += len(chosen)
            index = batch.get("index")
            if self.scorer == "verifier" and index is None:
                raise ValueError("the verifier scorer needs the batch's dataset indices (examples.WithIndex)")
            limit = self.max_positions or None
            data = {r: rows[r] for r in chosen}
            for r, p, completion in zip(chosen, prompts, new):
                target = completion
                if self.scorer == "verifier":
                    target = self._corrected(int(index[r]), completion)
                rows[r] = ((p + target)[:limit], ([IGNORE] * len(p) + target)[:limit])
            if self.scorer == "logprobs":
                topk = self._served(batch, rows, data, pick, {r: len(p) for r, p in zip(chosen, prompts)})
        xtok = self._aligned(batch, rows, data, pick, dict(zip(chosen, prompts))) if self.align else None
        out = self._rebuild(batch, rows, pick)
        if xtok is not None:
            out.update(xtok)
        if topk is not None:
            out.update(topk)
        return out

    def _served(self, batch, rows, data, pick, starts) -> dict[str, torch.Tensor]:
        """The served teacher's rows for the rollouts (failed ones go back to their data rows, in place)."""
        from stratos.distill.served_scores import rollout_topk

        chosen = list(starts)
        t0 = time.perf_counter()
        got = self.scores([rows[r][0] for r in chosen], [starts[r] for r in chosen])
        self.stats.score_seconds += time.perf_counter() - t0
        scored = {}
        for r, g in zip(chosen, got):
            if g is None:
                rows[r], pick[r] = data[r], False
                self.stats.score_failed += 1
                self.stats.rows -= 1
            else:
                scored[r] = (starts[r], *g)
                self.stats.scored_tokens += len(g[2])
        return rollout_topk(batch, rows, scored, self.scores.width)

    def _aligned(self, batch, rows, data, pick, prompts) -> dict[str, torch.Tensor]:
        """Cross-tokenizer KD: every row's teacher tokens and aligned pairs, the rollouts' built from the sampled text
        (a sample without text goes back to its data row, in place)."""
        from stratos.distill.examples import xtok_tensors

        t_ids, t_mask, t_pairs = (batch[k].cpu() for k in ("teacher_input_ids", "teacher_attention_mask", "xtok_pairs"))
        t_prompt = batch["teacher_prompt_len"].cpu().tolist()
        ids = [t_ids[r, : int(t_mask[r].sum())].tolist() for r in range(len(rows))]
        pairs = [t_pairs[r][t_pairs[r, :, 0] >= 0].tolist() for r in range(len(rows))]
        for r, p in prompts.items():
            got = self.align(p, rows[r][0][len(p):], ids[r][: t_prompt[r]])
            if got is None:
                rows[r], pick[r] = data[r], False
                self.stats.rows -= 1
            else:
                ids[r], pairs[r] = got
                self.stats.aligned += len(pairs[r])
                self.stats.alignable += len(rows[r][0]) - len(p)
        dev = batch["input_ids"].device
        return {k: v.to(dev) for k, v in xtok_tensors(ids, pairs, t_prompt).items()}

    def _corrected(self, index: int, completion: list[int]) -> list[int]:
        text = self.tokenizer.decode(completion, skip_special_tokens=True)
        fixed, ok, judged, right = self.judge(index, text)
        self.stats.lines_ok += ok
        self.stats.lines += judged
        self.stats.correct += int(right)
        return self.tokenizer(fixed, add_special_tokens=False)["input_ids"] + [self.eos_id]

    def _rebuild(self, batch, rows, pick) -> dict[str, torch.Tensor]:
        width = max(len(x) for x, _ in rows)
        B = len(rows)
        ids = torch.full((B, width), self.pad_id, dtype=torch.long)
        labels = torch.full((B, width), IGNORE, dtype=torch.long)
        mask = torch.zeros((B, width), dtype=torch.long)
        for r, (x, y) in enumerate(rows):
            ids[r, : len(x)], labels[r, : len(y)], mask[r, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        dev = batch["input_ids"].device
        out = {k: v for k, v in batch.items() if k not in ("input_ids", "labels", "attention_mask")}
        out.update(input_ids=ids.to(dev), labels=labels.to(dev), attention_mask=mask.to(dev),
                   on_policy=pick.to(dev))
        return out


def on_policy_losses(loss_fn, rollout_fn, hidden, weight, labels, rolled, teacher) -> dict[str, torch.Tensor]:
    """One per-token mean over every supervised token: data rows (1 - w) * CE + w * KD, rollout rows KD alone.

    hidden (B, T-1, H), labels (B, T-1), rolled (B,) bool; each part is summed over its own tokens and divided
    by the batch's token count n, so the two add up to the mean. Logged: "ce" per data token, "rollout_kd" per
    sampled token, "kd" over all tokens. A part without tokens (every row rolled out, at rate 1) is not called:
    it would add nothing but a zero (V, H) weight gradient (~10 ms a step at V = 32k, H = 128).
    """
    rolled = rolled.to(labels.device)[:, None]  # (B, 1)
    data_labels, roll_labels = labels.masked_fill(rolled, -100), labels.masked_fill(~rolled, -100)
    n_data, n_roll = int((data_labels != -100).sum()), int((roll_labels != -100).sum())
    n = max(1, n_data + n_roll)
    dt = torch.float64 if hidden.dtype == torch.float64 else torch.float32  # the loss's compute dtype
    zero = {k: hidden.new_zeros((), dtype=dt) for k in ("loss", "ce", "kd")}
    # the data part reads the teacher only with a KD term (a served teacher's rows cover the rollouts alone)
    data = (loss_fn(hidden, weight, data_labels, num_items=n, **(teacher if loss_fn.kd_weight > 0 else {}))
            if n_data or not n_roll else zero)
    roll = rollout_fn(hidden, weight, roll_labels, num_items=n, **teacher) if n_roll else zero
    return {"loss": data["loss"] + roll["loss"], "ce": data["ce"] * n / max(1, n_data),
            "kd": data["kd"] + roll["kd"], "rollout_kd": roll["kd"] * n / max(1, n_roll)}
