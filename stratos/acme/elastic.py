r"""Width- and depth-adjustable backbone from any supported HF transformer (ACME phase 1, after DynaBERT).

1. Importance. For every weight, $s = \sum_{batches} |g \odot W|$ with g = dL/dW of the task loss
   on the full model (first-order estimate of the loss change when the weight is removed). Head
   (kv group) and neuron scores sum s over the rows/columns they own (see `arch.Layout`).
2. Reordering. Per layer, kv groups, q heads within a group and FFN neurons are permuted into
   descending importance. Permuting whole heads/neurons on both sides of a projection leaves the
   function unchanged (tested), and afterwards *every width is a prefix*: the sub-network of width
   w keeps the first round(w * units) heads/neurons.
3. Slicing. A sub-network is a stock HF model built from `arch.sub_config`; its tensors are
   prefix slices of the full tensors with layer j mapped to kept layer keep[j]. Training runs the
   skeleton through `torch.func.functional_call` on those slices (views, so gradients of every
   sub-network accumulate into the one set of full weights); export clones the slices into a
   standalone model.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from stratos.acme import hf_bert  # noqa: F401  (registers stratos_bert with the Auto* factories)
from stratos.acme.arch import Layout, kept_layers, layout_of, sub_config

_LAYER = re.compile(r"^(?P<pre>.*?\.)(?P<idx>\d+)(?P<post>\..*)$")


# ------------------------------------------------------------------ importance
def weight_importance(model: PreTrainedModel, batches: Iterable[dict],
                      loss_fn: Callable[[PreTrainedModel, dict], torch.Tensor]) -> dict[str, torch.Tensor]:
    """name -> sum over batches of |grad * weight| (same shape as the parameter)."""
    params = dict(model.named_parameters())
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()  # no dropout noise in the scores
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        for n, p in params.items():
            if p.grad is not None:
                acc[n] += (p.grad * p.detach()).abs()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return acc


def _rows(t: torch.Tensor, unit: int) -> torch.Tensor:
    """(units * unit, ...) -> per-unit sums (units,)."""
    return t.reshape(-1, unit, *t.shape[1:]).abs().sum(dim=tuple(range(1, t.dim() + 1)))


def _cols(t: torch.Tensor, unit: int) -> torch.Tensor:
    """(out, units * unit) -> per-unit sums (units,)."""
    return t.reshape(t.shape[0], -1, unit).abs().sum(dim=(0, 2))


def unit_scores(lay: Layout, w_imp: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Per layer: {"q": (heads,), "kv": (kv_heads,), "group": (kv_heads,), "ffn": (intermediate,)}."""
    out = []
    for i in range(lay.layers):
        def get(mod: str, kind: str) -> torch.Tensor | None:
            return w_imp.get(f"{lay.layer_name(i, mod)}.{kind}")

        q = torch.zeros(lay.heads)
        for m in lay.q_rows:
            q += _rows(get(m, "weight"), lay.head_dim) + (_rows(get(m, "bias"), lay.head_dim)
                                                        if get(m, "bias") is not None else 0)
        for m in lay.o_cols:
            q += _cols(get(m, "weight"), lay.head_dim)
        kv = torch.zeros(lay.kv_heads)
        for m in lay.kv_rows:
            kv += _rows(get(m, "weight"), lay.head_dim) + (_rows(get(m, "bias"), lay.head_dim)
                                                         if get(m, "bias") is not None else 0)
        ffn = torch.zeros(lay.intermediate)
        for m in lay.ffn_rows:
            ffn += _rows(get(m, "weight"), 1) + (get(m, "bias").abs() if get(m, "bias") is not None else 0)
        for m in lay.ffn_cols:
            ffn += _cols(get(m, "weight"), 1)
        group = q.reshape(lay.kv_heads, lay.group).sum(1) + kv
        out.append({"q": q, "kv": kv, "group": group, "ffn": ffn})
    return out


# ------------------------------------------------------------------ reordering
def head_permutation(lay: Layout, scores: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(q-head order (heads,), kv-group order (kv_heads,)): groups by descending score, heads within a group too."""
    g_order = torch.argsort(scores["group"], descending=True, stable=True)
    q = scores["q"].reshape(lay.kv_heads, lay.group)
    q_order = [int(g) * lay.group + int(h) for g in g_order for h in torch.argsort(q[g], descending=True, stable=True)]
    return torch.tensor(q_order), g_order


def _unit_index(order: torch.Tensor, unit: int) -> torch.Tensor:
    """Unit order -> element order, e.g. heads [2, 0] with head_dim 2 -> [4, 5, 0, 1]."""
    return (order[:, None] * unit + torch.arange(unit)[None, :]).reshape(-1)


@torch.no_grad()
def reorder_(model: PreTrainedModel, scores: list[dict[str, torch.Tensor]]) -> None:
    """Permute heads/neurons of every layer into descending importance, in place (function-preserving)."""
    lay = layout_of(model.config)
    params = dict(model.named_parameters())

    def permute(name: str, idx: torch.Tensor, dim: int) -> None:
        if name in params:
            p = params[name]
            p.copy_(p.index_select(dim, idx))

    for i, s in enumerate(scores):
        q_order, g_order = head_permutation(lay, s)
        q_idx, kv_idx = _unit_index(q_order, lay.head_dim), _unit_index(g_order, lay.head_dim)
        n_idx = torch.argsort(s["ffn"], descending=True, stable=True)
        for m in lay.q_rows:
            permute(f"{lay.layer_name(i, m)}.weight", q_idx, 0)
            permute(f"{lay.layer_name(i, m)}.bias", q_idx, 0)
        for m in lay.kv_rows:
            permute(f"{lay.layer_name(i, m)}.weight", kv_idx, 0)
            permute(f"{lay.layer_name(i, m)}.bias", kv_idx, 0)
        for m in lay.o_cols:
            permute(f"{lay.layer_name(i, m)}.weight", q_idx, 1)
        for m in lay.ffn_rows:
            permute(f"{lay.layer_name(i, m)}.weight", n_idx, 0)
            permute(f"{lay.layer_name(i, m)}.bias", n_idx, 0)
        for m in lay.ffn_cols:
            permute(f"{lay.layer_name(i, m)}.weight", n_idx, 1)


# ------------------------------------------------------------------ slicing
def _source_name(name: str, lay: Layout, keep: list[int]) -> str:
    """Skeleton parameter name -> full-model name (layer j -> keep[j])."""
    if name.startswith(lay.layer_prefix + "."):
        m = _LAYER.match(name)
        return f"{m['pre']}{keep[int(m['idx'])]}{m['post']}"
    return name


def sliced_tensors(full: dict[str, torch.Tensor], skeleton: nn.Module, lay: Layout, depth: float) -> dict[str, torch.Tensor]:
    """Skeleton name -> prefix slice (a view) of the matching full tensor."""
    keep = kept_layers(lay.layers, depth)
    out = {}
    for name, p in skeleton.named_parameters():
        src = full[_source_name(name, lay, keep)]
        out[name] = src[tuple(slice(0, s) for s in p.shape)]
    return out


class ElasticModel(nn.Module):
    """A reordered full model plus a cache of sub-network skeletons; forward(width, depth, **inputs)."""

    def __init__(self, full: PreTrainedModel):
        super().__init__()
        self.full = full
        self.layout = layout_of(full.config)
        self._skeletons: dict[tuple[float, float], PreTrainedModel] = {}

    def skeleton(self, width: float, depth: float) -> PreTrainedModel:
        key = (float(width), float(depth))
        if key not in self._skeletons:
            cfg = sub_config(self.full.config, width, depth)
            with torch.device("meta"):  # shapes only: the weights always come from `full`
                sk = AutoModelForSequenceClassification.from_config(cfg)
            sk.to_empty(device="cpu")
            self._restore_buffers(sk)
            self._skeletons[key] = sk
        sk = self._skeletons[key]
        sk.train(self.training)
        return sk

    def _restore_buffers(self, sk: PreTrainedModel) -> None:
        """Non-persistent buffers (position ids, rotary frequencies) are config-derived: copy the full model's."""
        full_bufs = dict(self.full.named_buffers())
        keep = kept_layers(self.layout.layers, sk.config.stratos_elastic["depth"])
        with torch.no_grad():
            for name, b in sk.named_buffers():
                src = full_bufs[_source_name(name, self.layout, keep)]
                b.copy_(src[tuple(slice(0, s) for s in b.shape)])

    def forward(self, width: float, depth: float, **inputs):
        if width == 1.0 and depth == 1.0:
            return self.full(**inputs)
        sk = self.skeleton(width, depth)
        full = dict(self.full.named_parameters())
        return torch.func.functional_call(sk, sliced_tensors(full, sk, self.layout, depth), args=(), kwargs=inputs)


@torch.no_grad()
def extract(full: PreTrainedModel, width: float, depth: float) -> PreTrainedModel:
    """Standalone HF model of the (width, depth) sub-network (cloned weights, its own config)."""
    lay = layout_of(full.config)
    sub = AutoModelForSequenceClassification.from_config(sub_config(full.config, width, depth))
    tensors = sliced_tensors(dict(full.named_parameters()), sub, lay, depth)
    missing, unexpected = sub.load_state_dict({k: v.clone() for k, v in tensors.items()}, strict=False)
    params = {n for n, _ in sub.named_parameters()}
    assert not (set(missing) & params) and not unexpected, (missing, unexpected)
    return sub.eval()
