r"""Cross-tokenizer logit KD: a white-box teacher whose vocabulary differs from the student's.

Method (decided for Stratos; the alternatives are below). The teacher reads the same example tokenized
with its own tokenizer; stratos/distill/token_alignment.py cuts both tokenizations into spans of equal
text and pairs, per span, the student's and the teacher's next-token distributions conditioned on the
same text (n aligned pairs). At each pair, with $z^S \in \mathbb{R}^{V_s}$, $z^T \in \mathbb{R}^{V_t}$,
temperature $T$, and the shared vocabulary $K$ (id pairs $K_S, K_T$ of tokens with identical bytes):

$$\tilde p = \mathrm{softmax}(z^T_{K_T}/T),\quad \tilde q = \mathrm{softmax}(z^S_{K_S}/T)
  \qquad\text{(both renormalised over the shared tokens)}$$

$$\mathrm{ULD} = \big\|\,\mathrm{sort}_\downarrow(p) - \mathrm{sort}_\downarrow(q)\,\big\|_1,
  \quad p = \mathrm{softmax}(z^T/T),\; q = \mathrm{softmax}(z^S/T)\ \text{(shorter vector zero-padded)}$$

$$\mathrm{KD}_\times = \frac1n\sum_{i=1}^{n}\Big( g_i\,w_K\,T^2\,D(\tilde p_i, \tilde q_i) + w_U\,\mathrm{ULD}_i \Big),
  \qquad \mathcal{L} = (1-w)\,\mathrm{CE} + w\,\mathrm{KD}_\times$$

with $g_i = 1$ when the student's next token at pair i has a teacher counterpart (in K), else 0 (see below),
$D$ the configured divergence (`strategy.alignment.loss`, forward KL by default), CE the per-token
mean over every supervised student token (aligned or not), $w$ = `kd_weight`, $w_K$, $w_U$ =
`strategy.alignment.cross_tokenizer.{shared_weight,uld_weight}`. With `uld_over=unmatched` the ULD term
compares only the tokens outside K ($p_{U_T}$ against $q_{U_S}$, TRL GOLD's "hybrid" loss).

Why this method:
  * On the shared tokens the two distributions are comparable entry by entry, so the divergence of
    ordinary KD applies there; renormalising makes it a proper divergence whatever mass each side puts
    outside K. With identical tokenizers K is everything and the shared term is ordinary KD at the same
    positions: KD_x = w_K * KD + w_U * ULD(p, q) (tested with w_U = 0; ULD is 0 when q = p).
  * ULD (Boizard et al. 2024, "Towards cross-tokenizer distillation: the Universal Logit Distillation
    loss") needs no token correspondence: the L1 distance of sorted probability vectors teaches the
    teacher's confidence profile. It is bounded by 2 and not scaled by T^2.
  * ULD over the whole distributions by default, not only over the unmatched tokens: at a span where
    the student keeps whole what the teacher splits ("Ġ234m" against "Ġ23" + "4m"), the student's right
    token is often one the teacher lacks. Its probability should be high, like the teacher's on "Ġ23";
    the full profiles agree on that, while an unmatched-only ULD compares it with the teacher's mass on
    its own unmatched tokens (near 0 there) and pulls it down, against CE.
  * The shared term is gated by the student's own next token ($g_i$): where the student keeps whole what
    the teacher splits and its token has no teacher counterpart ("Ġ99m" against "Ġ99" + "m"), the teacher's
    shared distribution peaks on "Ġ99", and pulling the student's shared tokens that way fights its own
    right token (measured on Mahjong: held-out CE 1.45 ungated vs 0.93 without KD; see docs/evidence.md).
    There only ULD applies. With one tokenizer every next token is shared and the gate is 1 everywhere.
  * Span alignment by character offsets rather than position index: positions differ as soon as one
    tokenizer merges what the other splits; comparing the first prediction of each equal-text span
    conditions both models on the same text. (TRL GOLD multiplies the probabilities of a split span's
    later tokens into its first distribution; that scale cancels in the renormalised KL, so Stratos
    keeps the first distributions unscaled for both terms.)
  * Sequence-level KD (what Stratos did before for another vocabulary) needs the teacher to generate
    and a verifier to keep its answers; this needs one teacher forward per batch, like logit KD.

Chunking: as for ordinary KD (stratos/distill/losses.py) no (n, V) tensor is kept. The pairs are processed
`chunk_size` at a time under activation checkpointing: a chunk's student and teacher logits, softmaxes and
sorts exist only while that chunk is computed (forward, then once more in backward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from stratos.config import AlignmentConfig, CrossTokenizerConfig
from stratos.distill.losses import _denominator, _upcast, auto_chunk_size, check_loss_args, divergence
from stratos.distill.token_alignment import SharedVocab
from stratos.errors import bad_value

ULD_OVER = ("full", "unmatched")


def check_cross_args(shared_weight: float, uld_weight: float, prefix: str = "strategy.alignment.cross_tokenizer") -> None:
    """Raise UserError (one line) for bad cross-tokenizer weights."""
    for key, value in (("shared_weight", shared_weight), ("uld_weight", uld_weight)):
        if not float(value) >= 0:
            raise bad_value(f"{prefix}.{key}", value, "a weight >= 0")
    if float(shared_weight) == 0 and float(uld_weight) == 0:
        raise bad_value(f"{prefix}.uld_weight", uld_weight, "> 0 when shared_weight is 0 (one term must count)")


def uld_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""$$\|\mathrm{sort}_\downarrow(p) - \mathrm{sort}_\downarrow(q)\|_1$$ per row: p (n, a), q (n, b) -> (n,).

    The shorter vector is zero-padded (probabilities: the missing entries hold no mass). Invariant to
    permuting either side's entries, 0 when both hold the same multiset of probabilities.
    """
    ps = p.sort(-1, descending=True).values  # (n, a)
    qs = q.sort(-1, descending=True).values  # (n, b)
    a, b = ps.shape[-1], qs.shape[-1]
    ps, qs = F.pad(ps, (0, max(a, b) - a)), F.pad(qs, (0, max(a, b) - b))
    return (ps - qs).abs().sum(-1)


def cross_tokenizer_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, shared: SharedVocab,
                               temperature: float = 2.0, shared_weight: float = 1.0, uld_weight: float = 1.0,
                               loss: str = "forward_kl", beta: float = 0.5, alpha: float = 0.1,
                               uld_over: str = "full", gate: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Per-pair $$g\,w_K T^2 D(\tilde p, \tilde q) + w_U \mathrm{ULD}$$ (see the module docstring).

    student_logits (n, V_s), teacher_logits (n, V_t) at aligned pairs (teacher detached) -> (n,).
    uld_over: "full" (whole distributions) or "unmatched" (tokens outside the shared vocabulary).
    gate: (n,) bool/float, the shared term's g per pair (None = 1): see :func:`shared_gate`.
    """
    sv = shared.to(student_logits.device)
    T = temperature
    s = _upcast(student_logits) / T  # (n, V_s)
    t = _upcast(teacher_logits.detach()).to(s.dtype) / T  # (n, V_t)
    out = torch.zeros(s.shape[0], dtype=s.dtype, device=s.device)
    if shared_weight > 0 and len(sv) > 0:
        ls = F.log_softmax(s.index_select(-1, sv.student), -1)  # (n, M) renormalised over K
        lt = F.log_softmax(t.index_select(-1, sv.teacher), -1)
        d = divergence(ls, lt, loss, beta, alpha)  # (n,)
        out = out + shared_weight * T**2 * (d if gate is None else d * gate.to(d.dtype))
    if uld_weight > 0 and uld_over == "full":
        out = out + uld_weight * uld_distance(F.softmax(t, -1), F.softmax(s, -1))  # (n, V_t) vs (n, V_s)
    elif uld_weight > 0 and (sv.student_rest.numel() or sv.teacher_rest.numel()):
        q = F.softmax(s, -1).index_select(-1, sv.student_rest)  # (n, |U_S|)
        p = F.softmax(t, -1).index_select(-1, sv.teacher_rest)  # (n, |U_T|)
        out = out + uld_weight * uld_distance(p, q)
    return out


def shared_gate(shared: SharedVocab, targets: torch.Tensor) -> torch.Tensor:
    """(n,) bool: the student's next token at each pair (`targets` (n,) student ids) has a teacher counterpart."""
    return shared.to(targets.device).student_shared.index_select(0, targets.clamp(min=0)) & (targets >= 0)


def cross_tokenizer_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, shared: SharedVocab,
                       mask: Optional[torch.Tensor] = None, temperature: float = 2.0, shared_weight: float = 1.0,
                       uld_weight: float = 1.0, loss: str = "forward_kl", beta: float = 0.5, alpha: float = 0.1,
                       uld_over: str = "full", targets: Optional[torch.Tensor] = None,
                       num_items: Optional[int] = None) -> torch.Tensor:
    """KD_x from materialised logits: student (n, V_s), teacher (n, V_t) at aligned pairs; `mask` (n,) bool
    (False = padding pair, contributes 0); `targets` (n,) the student's next token per pair (gates the shared
    term; None = no gate). Mean over the kept pairs (or `num_items`); 0 when none is kept."""
    check_loss_args(loss, temperature, beta, alpha)
    check_cross_args(shared_weight, uld_weight)
    keep = torch.arange(student_logits.shape[0], device=student_logits.device) if mask is None else \
        mask.reshape(-1).nonzero().squeeze(1)
    gate = None if targets is None else shared_gate(shared, targets.reshape(-1).index_select(0, keep))
    d = cross_tokenizer_divergence(student_logits.index_select(0, keep), teacher_logits.index_select(0, keep), shared,
                                   temperature, shared_weight, uld_weight, loss, beta, alpha, uld_over, gate)
    return d.sum() / _denominator(keep.numel(), num_items)


@dataclass
class ChunkedCrossTokenizerKD:
    r"""KD_x from hidden states and LM-head weights, a chunk of pairs at a time, never holding (n, V) logits.

    Call with the student's hidden rows at the aligned pairs (n, H), its head weight (V_s, H) [+ bias], the
    shared vocabulary, and one teacher source at the same pairs: teacher_logits (n, V_t), or teacher_hidden
    (n, H_t) + teacher_weight (V_t, H_t) [+ teacher_bias]; `targets` (n,): the student's next token per pair
    (gates the shared term, see the module docstring; None = no gate). Equals :func:`cross_tokenizer_kd` on the
    materialised logits (tested), computes in fp32 (fp64 for fp64 inputs, also under autocast), and gives
    the teacher no gradient. Returns a scalar (0 with a zero gradient when n == 0).
    """

    # defaults: the `strategy.alignment` group's (AlignmentConfig owns them)
    loss: str = AlignmentConfig.loss
    temperature: float = AlignmentConfig.temperature
    beta: float = AlignmentConfig.beta
    alpha: float = AlignmentConfig.alpha
    chunk_size: int = AlignmentConfig.chunk_size
    shared_weight: float = CrossTokenizerConfig.shared_weight
    uld_weight: float = CrossTokenizerConfig.uld_weight
    uld_over: str = CrossTokenizerConfig.uld_over

    def __post_init__(self) -> None:
        check_loss_args(self.loss, self.temperature, self.beta, self.alpha)
        check_cross_args(self.shared_weight, self.uld_weight)
        if self.uld_over not in ULD_OVER:
            raise bad_value("strategy.alignment.cross_tokenizer.uld_over", self.uld_over, ", ".join(ULD_OVER))

    @classmethod
    def from_config(cls, alignment: Any) -> "ChunkedCrossTokenizerKD":
        """From ``cfg.strategy.alignment`` (AlignmentConfig)."""
        x = alignment.cross_tokenizer
        x = CrossTokenizerConfig(**x) if isinstance(x, dict) else x
        return cls(loss=str(alignment.loss), temperature=float(alignment.temperature), beta=float(alignment.beta),
                   alpha=float(alignment.alpha), chunk_size=int(alignment.chunk_size),
                   shared_weight=float(x.shared_weight), uld_weight=float(x.uld_weight), uld_over=str(x.uld_over))

    def __call__(self, student_hidden: torch.Tensor, student_weight: torch.Tensor, shared: SharedVocab, *,
                 teacher_logits: Optional[torch.Tensor] = None, teacher_hidden: Optional[torch.Tensor] = None,
                 teacher_weight: Optional[torch.Tensor] = None, student_bias: Optional[torch.Tensor] = None,
                 teacher_bias: Optional[torch.Tensor] = None, targets: Optional[torch.Tensor] = None,
                 num_items: Optional[int] = None) -> torch.Tensor:
        n = student_hidden.shape[0]
        if (teacher_logits is None) == (teacher_hidden is None):
            raise ValueError("give exactly one of teacher_logits, teacher_hidden (+teacher_weight)")
        if teacher_hidden is not None and teacher_weight is None:
            raise ValueError("teacher_hidden needs teacher_weight (V_t, H_t)")
        denom = _denominator(n, num_items)
        if n == 0:
            return (student_hidden.sum() + student_weight.sum()) * 0.0
        cdt = torch.float64 if student_hidden.dtype == torch.float64 else torch.float32
        V = student_weight.shape[0] + (teacher_weight.shape[0] if teacher_weight is not None else teacher_logits.shape[-1])
        step = self.chunk_size if self.chunk_size > 0 else auto_chunk_size(V)
        t_src = (teacher_logits if teacher_logits is not None else teacher_hidden).detach()
        t_w = None if teacher_weight is None else teacher_weight.detach().to(cdt)
        t_b = None if teacher_bias is None else teacher_bias.detach().to(cdt)

        gate = None if targets is None else shared_gate(shared, targets.reshape(-1))  # (n,)

        def chunk(h, w, b, t_rows, g):  # h (C, H) -> summed divergence of the chunk's pairs
            z = F.linear(h.to(cdt), w.to(cdt), None if b is None else b.to(cdt))  # (C, V_s)
            with torch.no_grad():
                zt = t_rows.to(cdt) if t_w is None else F.linear(t_rows.to(cdt), t_w, t_b)  # (C, V_t)
            return cross_tokenizer_divergence(z, zt, shared, self.temperature, self.shared_weight, self.uld_weight,
                                              self.loss, self.beta, self.alpha, self.uld_over, g).sum()

        total = torch.zeros((), dtype=cdt, device=student_hidden.device)
        with torch.autocast(device_type=student_hidden.device.type, enabled=False):
            for start in range(0, n, step):
                sl = slice(start, min(start + step, n))
                args = (student_hidden[sl], student_weight, student_bias, t_src[sl], None if gate is None else gate[sl])
                part = checkpoint(chunk, *args, use_reentrant=False) if torch.is_grad_enabled() else chunk(*args)
                total = total + part
        return total / denom
