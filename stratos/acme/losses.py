r"""Distillation losses for elastic training (pure functions; the training loop only wires them).

ACME/DynaBERT train every sub-network against the full model:
$$ \mathcal{L} = \underbrace{-\frac{T^2}{B}\sum_b \sum_c p^{t}_{bc} \log p^{s}_{bc}}_{\text{soft CE}}
   + \lambda \cdot \frac{1}{|M|}\sum_{(j, l) \in M} \mathrm{MSE}(h^s_j, h^t_l),\qquad
   p = \mathrm{softmax}(z / T) $$
with $\lambda = 0.1$ in the reference and M pairing student layer j with the teacher layer it was cut
from (embeddings with embeddings).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
                       ) -> torch.Tensor:
    """Soft-label CE, student (B, C) vs teacher (B, C) -> scalar. Scaled by T^2 so gradients keep their size.

    Equals KL(p_t || p_s) + H(p_t); the entropy term has no gradient w.r.t. the student.
    """
    t = temperature
    p_t = F.softmax(teacher_logits.detach() / t, dim=-1)
    return -(p_t * F.log_softmax(student_logits / t, dim=-1)).sum(-1).mean() * t * t


def hidden_mse(student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor],
               kept_layers: Sequence[int]) -> torch.Tensor:
    """Mean MSE over matched hidden states, each (B, T, H).

    student_hidden = (embeddings, layer 0 out, ..., layer n-1 out) of the sub-network;
    teacher_hidden = the full model's (L + 1) states; student layer j was cut from teacher layer kept_layers[j].
    """
    pairs = [(0, 0)] + [(j + 1, l + 1) for j, l in enumerate(kept_layers)]
    losses = [F.mse_loss(student_hidden[j], teacher_hidden[l].detach()) for j, l in pairs]
    return torch.stack(losses).mean()


def distill_loss(student_out, teacher_out, kept_layers: Sequence[int], temperature: float, hidden_weight: float
                 ) -> torch.Tensor:
    """Soft CE + hidden_weight * hidden MSE for HF outputs carrying .logits and .hidden_states."""
    loss = soft_cross_entropy(student_out.logits, teacher_out.logits, temperature)
    if hidden_weight > 0:
        loss = loss + hidden_weight * hidden_mse(student_out.hidden_states, teacher_out.hidden_states, kept_layers)
    return loss
