"""Forward passes that skip a batch's padding without changing the batch.

A right-padded batch of B rows of width T = max(lengths) costs B * T positions in every linear layer,
while only sum(lengths) are real. Sorting the rows by length and running the model on a few
contiguous slices, each trimmed to its own longest row, costs sum_g |g| * max_g positions instead;
the outputs are padded back to (B, T, ...) in the batch's own row order. Same rows, same batch,
same loss: unlike `trainer.group_by_length`, which changes which rows share a step (and on Mahjong
cost accuracy), this changes only how the step is computed.

Why slices and not one packed row: packing all real tokens into one (1, sum(lengths)) sequence
needs a block-diagonal attention mask, and CPU attention kernels then pay for the whole
(sum L)^2 score matrix; slices keep attention per row at max_g^2.

Why a limit on slices: each one is a separate forward (kernel launches, Python), so a slice is
added only where it removes at least `min_gain` of the batch's B * T positions.

    plan = plan_slices(lengths, max_slices=4)        # list of row-index tensors, longest first
    hidden = sliced_forward(fn, input_ids, attention_mask, plan)   # fn(ids, mask) -> (b, w, H)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MIN_GAIN = 0.05  # a slice must save >= 5 % of the batch's positions to pay for its extra forward
AUTO_SLICES = 4  # what `trainer.length_slices=0` (auto) means at 32-bit precision


def resolve_slices(length_slices: int, precision: str = "32-true", strategy: str = "auto") -> tuple[int, str]:
    """(slices to use, why) for `trainer.length_slices` (0 = auto) under a Lightning precision (or a
    torch dtype's name) and strategy.
    - FSDP / DeepSpeed gather the weights per forward call: always one forward per batch.
    - auto: 4 slices at 32-bit precision; off under 16-bit, where the CPU's bf16 matmuls took 49 %
      longer on the smaller calls despite 17 % fewer positions (the step: 0.96x on the KD benchmark pair)."""
    n = int(length_slices)
    if str(strategy).startswith(("fsdp", "deepspeed")):
        return 1, f"one forward per batch under trainer.distributed={strategy} (weights are gathered per forward)"
    if n > 0:
        return n, "set by trainer.length_slices"
    p = str(precision)
    if ("32" in p or "64" in p) and "16" not in p:
        return AUTO_SLICES, f"auto: {AUTO_SLICES} at 32-bit precision"
    return 1, f"auto: off at precision {p} (16-bit matmuls lose more to small calls than slices save)"


def right_padded(attention_mask: torch.Tensor) -> bool:
    """True when every row is ones then zeros: trimming columns on the right drops only padding."""
    lengths = attention_mask.sum(1, keepdim=True)  # (B, 1)
    cols = torch.arange(attention_mask.shape[1], device=attention_mask.device)  # (T,)
    return bool(((cols < lengths).to(attention_mask.dtype) == attention_mask).all())


def best_partitions(lengths: np.ndarray, n: int) -> list[tuple[int, list[int]]]:
    """For k = 1..n (n <= B): the split of lengths sorted longest first into k contiguous groups that
    minimises the positions computed, sum_g |g| * max_g (a group's max is its first element), as
    (positions, group end indices). One exact dynamic programme over k, vectorised over the split
    point: O(n * B^2). Splitting a group never adds positions, so more groups are never worse."""
    B = len(lengths)
    # cost[i, j] = (j - i) * lengths[i]: rows i..j-1 as one group; inf where the group would be empty
    i, j = np.arange(B + 1)[:, None], np.arange(B + 1)[None, :]
    cost = np.where(i < j, (j - i) * np.append(lengths, 0)[:, None], np.inf)  # (B+1, B+1)
    best, starts, out = cost[0], [], []  # best[j]: rows 0..j-1 in the groups so far
    for k in range(1, n + 1):
        if k > 1:
            total = best[:, None] + cost  # (B+1, B+1): previous groups end at i, the new one is i..j-1
            arg = total.argmin(0)
            best = total[arg, np.arange(B + 1)]
            starts.append(arg)
        ends = [B]
        for arg in reversed(starts):  # walk back: where the last group starts is where the one before ends
            ends.append(int(arg[ends[-1]]))
        out.append((int(best[B]), sorted(ends)))
    return out


def plan_slices(lengths: torch.Tensor, max_slices: int, min_gain: float = MIN_GAIN) -> list[torch.Tensor]:
    """Row indices of each slice (longest rows first). One slice (the whole batch, unsorted) when
    splitting saves too little; otherwise the fewest slices within `min_gain` of the best split."""
    B = int(lengths.numel())
    whole = [torch.arange(B, device=lengths.device)]
    if max_slices <= 1 or B <= 1:
        return whole
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_len = lengths[order].cpu().numpy().astype(np.int64)
    full = B * int(sorted_len[0])
    costs = best_partitions(sorted_len, min(max_slices, B))
    k = 0  # add a slice only while it saves >= min_gain of the full batch's positions
    while k + 1 < len(costs) and costs[k][0] - costs[k + 1][0] >= min_gain * full:
        k += 1
    if k == 0:
        return whole
    bounds = [0] + costs[k][1]
    return [order[a:b] for a, b in zip(bounds, bounds[1:])]


def sliced_forward(fn, input_ids: torch.Tensor, attention_mask: torch.Tensor, plan: list[torch.Tensor]):
    """fn(input_ids (b, w), attention_mask (b, w)) -> tensor or tuple of tensors (b, w, ...), run on
    each slice of `plan` trimmed to its longest row; returns fn's output for the whole (B, T) batch,
    rows in batch order, zeros at trimmed (padding) positions. Gradients flow through the slices."""
    if len(plan) == 1:
        return fn(input_ids, attention_mask)
    T = input_ids.shape[1]
    lengths = attention_mask.sum(1)
    parts = []
    for rows in plan:
        w = int(lengths[rows].max())
        out = fn(input_ids[rows, :w], attention_mask[rows, :w])
        parts.append(out if isinstance(out, tuple) else (out,))
    order = torch.cat(plan)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)  # batch row r sits at inverse[r]
    merged = []
    for pieces in zip(*parts):  # each output of fn: pad (b, w, ...) to (b, T, ...), stack, restore order
        padded = [F.pad(p, (0, 0) * (p.dim() - 2) + (0, T - p.shape[1])) for p in pieces]
        merged.append(torch.cat(padded)[inverse])
    return merged[0] if len(merged) == 1 else tuple(merged)


def computed_positions(attention_mask: torch.Tensor, plan: list[torch.Tensor]) -> int:
    """Positions a sliced forward computes: sum over slices of rows x the slice's longest row."""
    if len(plan) == 1:
        return attention_mask.numel()
    lengths = attention_mask.sum(1)
    return sum(len(rows) * int(lengths[rows].max()) for rows in plan)


def batch_slices(attention_mask: torch.Tensor, max_slices: int) -> list[torch.Tensor]:
    """The plan for a batch, or the whole batch when it is not right-padded (trimming would then cut
    real tokens) or slicing is off."""
    B = attention_mask.shape[0]
    if max_slices <= 1 or B <= 1 or not right_padded(attention_mask):
        return [torch.arange(B, device=attention_mask.device)]
    return plan_slices(attention_mask.sum(1), max_slices)
