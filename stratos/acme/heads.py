"""Edge phase: classification heads on a frozen backbone sub-network, their search, importance and pruning.

Features. The backbone's last hidden states (B, T, H) are pooled to (B, H): "cls" = the token that
sees the whole input (first token for bidirectional encoders, last real token for causal
decoders), "mean" = mask-weighted mean over real tokens. Heads only ever see pooled features, so
the backbone runs once per example and head training is a few ms.

Head = standardise (edge-computed mean/std, fixed buffers) -> [Linear -> GELU] x depth -> Linear.
The hidden units are the prunable units; their importance is |grad x weight| summed over the
unit's incoming row (weight + bias) and outgoing column, as for backbone neurons.

Search (per device class): exhaustive over poolings x hiddens x depths (a few dozen points: exact
and cheaper than a search algorithm), each trained on the edge's calibration split and scored on
its validation split; the most accurate head within the class's parameter budget wins (ties ->
fewer parameters).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from stratos.errors import UserError


@dataclass(frozen=True)
class HeadArch:
    pooling: str  # cls | mean
    hidden: int
    depth: int

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def pooled_features(model: PreTrainedModel, enc: dict[str, torch.Tensor], batch_size: int = 256
                    ) -> dict[str, torch.Tensor]:
    """{"cls": (N, H), "mean": (N, H)} from the backbone body of a sequence classifier."""
    body = model.base_model.eval()
    causal = model.config.model_type not in ("bert", "stratos_bert")
    cls, mean = [], []
    for s in range(0, enc["input_ids"].shape[0], batch_size):
        ids, mask = enc["input_ids"][s:s + batch_size], enc["attention_mask"][s:s + batch_size]
        h = body(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, H)
        m = mask.unsqueeze(-1).to(h.dtype)
        mean.append((h * m).sum(1) / m.sum(1).clamp_min(1.0))
        pos = (mask.sum(1) - 1) if causal else torch.zeros(len(ids), dtype=torch.long)  # right padding
        cls.append(h[torch.arange(len(ids)), pos])
    return {"cls": torch.cat(cls), "mean": torch.cat(mean)}


class Head(nn.Module):
    def __init__(self, in_dim: int, hiddens: list[int], n_classes: int, mean: torch.Tensor | None = None,
                 std: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("mu", torch.zeros(in_dim) if mean is None else mean.clone())
        self.register_buffer("sigma", torch.ones(in_dim) if std is None else std.clone())
        dims = [in_dim, *hiddens]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(dims[-1], n_classes)

    @property
    def hiddens(self) -> list[int]:
        return [lin.out_features for lin in self.hidden]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, H) pooled features -> (B, C) logits."""
        x = (z - self.mu) / self.sigma
        for lin in self.hidden:
            x = F.gelu(lin(x))
        return self.out(x)


def n_params(arch: HeadArch, in_dim: int, n_classes: int) -> int:
    dims = [in_dim] + [arch.hidden] * arch.depth + [n_classes]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


def new_head(arch: HeadArch, feats: torch.Tensor, n_classes: int, seed: int) -> Head:
    """A head whose standardiser is fitted on `feats` (N, H)."""
    torch.manual_seed(seed)
    return Head(feats.shape[1], [arch.hidden] * arch.depth, n_classes, feats.mean(0), feats.std(0).clamp_min(1e-4))


def train_head(head: Head, Z: torch.Tensor, y: torch.Tensor, steps: int, lr: float, seed: int,
               batch_size: int = 256) -> Head:
    """AdamW on (Z (N, H), y (N,)); full batch when N <= batch_size."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-3)
    head.train()
    for _ in range(steps):
        idx = torch.randperm(len(y), generator=g)[:batch_size]
        loss = F.cross_entropy(head(Z[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return head.eval()


@torch.no_grad()
def head_accuracy(head: Head, Z: torch.Tensor, y: torch.Tensor) -> float:
    return float((head.eval()(Z).argmax(-1) == y).float().mean()) if len(y) else float("nan")


def head_importance(head: Head, Z: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Per hidden layer l: (hidden_l,) scores, sum of |grad x weight| over each unit's row, bias and next column."""
    head.zero_grad(set_to_none=True)
    F.cross_entropy(head.train()(Z), y).backward()
    nexts = [*head.hidden[1:], head.out]
    scores = []
    for lin, nxt in zip(head.hidden, nexts):
        s = (lin.weight.grad * lin.weight).abs().sum(1) + (lin.bias.grad * lin.bias).abs()
        s = s + (nxt.weight.grad * nxt.weight).abs().sum(0)
        scores.append(s.detach())
    head.zero_grad(set_to_none=True)
    head.eval()
    return scores


@torch.no_grad()
def prune_head(head: Head, scores: list[torch.Tensor], keep_ratio: float) -> Head:
    """Keep the top round(keep_ratio * h) units of every hidden layer (original order kept); a smaller Head."""
    keeps = [torch.sort(torch.argsort(s, descending=True)[:max(1, round(keep_ratio * len(s)))]).values
             for s in scores]
    new = Head(head.mu.numel(), [len(k) for k in keeps], head.out.out_features, head.mu, head.sigma)
    prev = torch.arange(head.mu.numel())
    for old, lin, keep in zip(head.hidden, new.hidden, keeps):
        lin.weight.copy_(old.weight[keep][:, prev])
        lin.bias.copy_(old.bias[keep])
        prev = keep
    new.out.weight.copy_(head.out.weight[:, prev])
    new.out.bias.copy_(head.out.bias)
    return new.eval()


def search_heads(feats: dict[str, torch.Tensor], y: torch.Tensor, val_frac: float, space, n_classes: int,
                 max_params: int, seed: int) -> tuple[HeadArch, Head, list[dict]]:
    """Exhaustive head search on calibration features. `space` = acme.heads. Returns (arch, head, table)."""
    rng = np.random.default_rng(seed)
    order = torch.as_tensor(rng.permutation(len(y)))
    n_val = max(1, int(round(val_frac * len(y))))
    val, tr = order[:n_val], order[n_val:]
    in_dim = next(iter(feats.values())).shape[1]
    table, best = [], None
    for pooling, hidden, depth in itertools.product(space.poolings, space.hiddens, space.depths):
        arch = HeadArch(str(pooling), int(hidden), int(depth))
        p = n_params(arch, in_dim, n_classes)
        row = {**arch.as_dict(), "params": p, "fits": p <= max_params, "val_acc": None}
        if p <= max_params:
            Z = feats[arch.pooling]
            head = train_head(new_head(arch, Z[tr], n_classes, seed), Z[tr], y[tr], space.steps, space.lr, seed)
            row["val_acc"] = head_accuracy(head, Z[val], y[val])
            if best is None or (row["val_acc"], -p) > (best[0]["val_acc"], -best[0]["params"]):
                best = (row, arch, head)
        table.append(row)
    if best is None:
        smallest = min(r["params"] for r in table)
        raise UserError(f"invalid value for 'device_classes[].head_max_params': {max_params} "
                        f"(allowed: >= {smallest}, the smallest head in acme.heads)")
    return best[1], best[2], table
