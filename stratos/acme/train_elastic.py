"""Cloud phase 1: make a fine-tuned classifier elastic in width and depth.

    teacher = copy of the fine-tuned full model (frozen)
    importance -> reorder (function-preserving) -> for each step, a sandwich of sub-networks
    (largest, smallest, and random others from the widths x depths grid) each takes
    soft CE + 0.1 * hidden MSE against the teacher; gradients accumulate into the shared weights.

The sandwich rule (largest + smallest every step) is from slimmable networks: it bounds the
accuracy of every width in between while costing `subnets_per_step` forwards instead of |grid|.
"""

from __future__ import annotations

import copy
import itertools
import logging

import numpy as np
import torch
from transformers import PreTrainedModel

from stratos.acme.arch import kept_layers
from stratos.acme.backbone import accuracy
from stratos.acme.elastic import ElasticModel, reorder_, unit_scores, weight_importance
from stratos.acme.losses import distill_loss

log = logging.getLogger("stratos")


def grid(widths, depths) -> list[tuple[float, float]]:
    """All (width, depth) sub-networks, largest first."""
    return sorted(itertools.product(map(float, widths), map(float, depths)), key=lambda wd: (-wd[0] * wd[1], -wd[0]))


def importance_and_reorder(model: PreTrainedModel, enc: dict, labels: torch.Tensor, n_batches: int,
                           batch_size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """|grad x weight| head/neuron scores of the task loss on `n_batches` batches; reorders `model` in place."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        idx = torch.as_tensor(rng.choice(len(labels), size=min(batch_size, len(labels)), replace=False))
        batches.append({**{k: v[idx] for k, v in enc.items()}, "labels": labels[idx]})
    w_imp = weight_importance(model, batches, lambda m, b: m(**b).loss)
    scores = unit_scores(ElasticModel(model).layout, w_imp)
    reorder_(model, scores)
    return scores


def one_cycle(opt: torch.optim.Optimizer, lr: float, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle schedule with a 10 % warm-up, at least two warm-up steps.

    OneCycleLR divides by each phase's length in steps, so a warm-up under two steps (10 % of fewer than 20)
    divides by zero; with 1-2 steps there is no cycle to run and the rate stays at `lr`."""
    if steps <= 2:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    pct_start = min(0.5, max(0.1, 2.0 / steps))
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=pct_start)


def train_elastic(model: PreTrainedModel, enc: dict, labels: torch.Tensor, e, seed: int) -> ElasticModel:
    """Multi-width/depth distillation of `model` (already reordered) from a frozen copy of itself.

    `e` is `acme.elastic` (steps, subnets_per_step, lr, batch_size, temperature, hidden_weight).
    """
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    elastic = ElasticModel(model)
    subnets = grid(e.widths, e.depths)
    largest, smallest, middle = subnets[0], subnets[-1], subnets[1:-1]
    opt = torch.optim.AdamW(model.parameters(), lr=e.lr, weight_decay=0.01)
    sched = one_cycle(opt, e.lr, e.steps)
    rng = np.random.default_rng(seed)
    n_layers = elastic.layout.layers
    elastic.train()
    history = []
    for step in range(e.steps):
        idx = torch.as_tensor(rng.choice(len(labels), size=min(e.batch_size, len(labels)), replace=False))
        batch = {k: v[idx] for k, v in enc.items()}
        with torch.no_grad():
            t_out = teacher(**batch, output_hidden_states=True)
        picks = [largest, smallest] + [middle[i] for i in rng.choice(len(middle), size=min(len(middle),
                                                                    e.subnets_per_step - 2), replace=False)]
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for w, d in picks:
            s_out = elastic(w, d, **batch, output_hidden_states=True)
            loss = distill_loss(s_out, t_out, kept_layers(n_layers, d), e.temperature, e.hidden_weight)
            (loss / len(picks)).backward()  # accumulate: one sub-network's graph alive at a time
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append(total / len(picks))
        if (step + 1) % 50 == 0:
            log.info("acme: elastic step %d/%d, mean distill loss %.4f", step + 1, e.steps, history[-1])
    return elastic.eval()


def measure_accuracy(elastic: ElasticModel, enc: dict, labels: torch.Tensor, subnets) -> dict[tuple[float, float], float]:
    """Held-out accuracy of each (width, depth)."""
    out = {}
    with torch.no_grad():
        for w, d in subnets:
            out[(w, d)] = accuracy(lambda **kw: elastic(w, d, **kw), enc, labels)
    return out

