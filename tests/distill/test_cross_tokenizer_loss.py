"""Cross-tokenizer KD identities: identical vocabularies give ordinary KD, ULD is a sorted L1, masks give 0,
gradients reach the student only, chunked equals plain."""

from __future__ import annotations

import pytest
import torch

from stratos.distill.cross_tokenizer_loss import (ChunkedCrossTokenizerKD, cross_tokenizer_divergence,
                                                  cross_tokenizer_kd, uld_distance)
from stratos.distill.losses import kd_loss
from stratos.distill.token_alignment import SharedVocab
from stratos.errors import UserError

VS, VT, H, HT = 11, 14, 6, 5


def identity(v: int) -> SharedVocab:
    ids = torch.arange(v)
    return SharedVocab(ids, ids, v, v)


def partial() -> SharedVocab:
    """7 shared tokens, at scattered ids on both sides (teacher id != student id)."""
    s = torch.tensor([0, 2, 3, 5, 7, 8, 10])
    t = torch.tensor([13, 1, 4, 6, 9, 0, 12])
    return SharedVocab(t, s, VS, VT)


@pytest.mark.parametrize("loss", ["forward_kl", "reverse_kl", "jsd", "tvd"])
def test_identical_vocabularies_give_ordinary_kd_times_the_shared_weight_plus_uld(loss):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(9, VS, generator=g, dtype=torch.float64), torch.randn(9, VS, generator=g, dtype=torch.float64)
    labels = torch.arange(9)
    want = kd_loss(s, t, labels, loss, temperature=2.0)
    kw = dict(temperature=2.0, shared_weight=0.7, loss=loss)
    got = cross_tokenizer_kd(s, t, identity(VS), uld_weight=0.0, **kw)
    assert got.item() == pytest.approx(0.7 * want.item(), rel=1e-10)
    # unmatched-only ULD has nothing to compare; full ULD adds the sorted L1 of the two distributions
    assert cross_tokenizer_kd(s, t, identity(VS), uld_weight=1.0, uld_over="unmatched", **kw).item() == \
        pytest.approx(got.item(), rel=1e-10)
    uld = uld_distance(torch.softmax(t / 2, -1), torch.softmax(s / 2, -1)).mean()
    assert cross_tokenizer_kd(s, t, identity(VS), uld_weight=1.0, **kw).item() == pytest.approx((got + uld).item())


def test_full_uld_lets_the_student_be_sure_of_a_token_the_teacher_lacks():
    """A span the student keeps whole ("Ġ234m", student-only) and the teacher splits ("Ġ23" + ...): both are
    90 % sure of their own first token. The full profiles agree; unmatched-only ULD pulls the student down."""
    sv = partial()  # student id 1 is unmatched, teacher id 1 is shared
    q = torch.full((1, VS), 0.1 / (VS - 1))
    q[0, 1] = 0.9
    p = torch.full((1, VT), 0.1 / (VT - 1))
    p[0, 1] = 0.9
    kw = dict(temperature=1.0, shared_weight=0.0, uld_weight=1.0)
    full = cross_tokenizer_divergence(q.log(), p.log(), sv, **kw).item()
    unmatched = cross_tokenizer_divergence(q.log(), p.log(), sv, uld_over="unmatched", **kw).item()
    assert full < 0.05 and unmatched > 0.85  # full: only the tails differ (13 vs 10 entries)


def test_uld_is_a_sorted_l1_invariant_to_permutations():
    p = torch.tensor([[0.5, 0.3, 0.2]])
    q = torch.tensor([[0.1, 0.6, 0.2, 0.1]])
    # sorted: (0.5, 0.3, 0.2, 0) vs (0.6, 0.2, 0.1, 0.1)
    assert uld_distance(p, q).item() == pytest.approx(0.1 + 0.1 + 0.1 + 0.1)
    assert uld_distance(p[:, [2, 0, 1]], q[:, [3, 1, 0, 2]]).item() == pytest.approx(uld_distance(p, q).item())
    assert uld_distance(q, q[:, [1, 2, 3, 0]]).item() == 0.0


def test_the_shared_term_ignores_teacher_mass_outside_the_shared_vocabulary():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(4, VS, generator=g), torch.randn(4, VT, generator=g)
    sv = partial()
    t2 = t.clone()
    t2[:, sv.teacher_rest] += 3.0  # more teacher mass on tokens the student lacks
    kw = dict(temperature=1.0, shared_weight=1.0, uld_weight=0.0)
    assert torch.allclose(cross_tokenizer_divergence(s, t, sv, **kw), cross_tokenizer_divergence(s, t2, sv, **kw))
    # ... which the ULD term sees
    kw.update(uld_weight=1.0, shared_weight=0.0, uld_over="unmatched")
    assert (cross_tokenizer_divergence(s, t2, sv, **kw) > cross_tokenizer_divergence(s, t, sv, **kw)).all()


def test_equal_distributions_under_the_map_give_zero():
    sv = partial()
    s = torch.randn(3, VS)
    t = torch.full((3, VT), -30.0)
    t[:, sv.teacher] = s[:, sv.student]  # the teacher = the student on K, no mass elsewhere
    s2 = s.clone()
    s2[:, sv.student_rest] = -30.0
    d = cross_tokenizer_divergence(s2, t, sv, temperature=1.0)
    assert d.abs().max().item() < 1e-6


def test_the_shared_term_counts_only_where_the_students_next_token_has_a_teacher_counterpart():
    g = torch.Generator().manual_seed(4)
    s, t = torch.randn(4, VS, generator=g), torch.randn(4, VT, generator=g)
    sv = partial()
    targets = torch.tensor([0, 1, 2, 4])  # 1 and 4 are student-only tokens
    kw = dict(temperature=2.0, uld_weight=0.5)
    full = cross_tokenizer_divergence(s, t, sv, **kw)
    uld_only = cross_tokenizer_divergence(s, t, sv, shared_weight=0.0, **kw)
    gate = torch.tensor([True, False, True, False])
    assert torch.allclose(cross_tokenizer_divergence(s, t, sv, gate=gate, **kw), torch.where(gate, full, uld_only))
    got = cross_tokenizer_kd(s, t, sv, targets=targets, **kw)
    assert got.item() == pytest.approx(torch.where(gate, full, uld_only).mean().item())


def test_masked_pairs_contribute_nothing_and_all_masked_is_zero_with_zero_grad():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(6, VS, generator=g, requires_grad=True)
    t = torch.randn(6, VT, generator=g)
    mask = torch.tensor([True, False, True, True, False, True])
    base = cross_tokenizer_kd(s, t, partial(), mask)
    s2 = s.detach().clone()
    s2[~mask] = torch.randn(2, VS)
    assert cross_tokenizer_kd(s2, t, partial(), mask).item() == pytest.approx(base.item())
    base.backward()
    assert s.grad[~mask].abs().max() == 0 and s.grad[mask].abs().max() > 0
    s.grad = None
    zero = cross_tokenizer_kd(s, t, partial(), torch.zeros(6, dtype=torch.bool))
    zero.backward()
    assert zero.item() == 0.0 and torch.isfinite(s.grad).all() and s.grad.abs().max() == 0


@pytest.mark.parametrize("source, uld_over", [("logits", "full"), ("hidden", "unmatched")])
def test_chunked_equals_plain_in_value_and_gradients(source, uld_over):
    g = torch.Generator().manual_seed(3)
    n = 13
    h = torch.randn(n, H, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(VS, H, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(VS, generator=g, dtype=torch.float64, requires_grad=True)
    th = torch.randn(n, HT, generator=g, dtype=torch.float64, requires_grad=True)
    tw = torch.randn(VT, HT, generator=g, dtype=torch.float64, requires_grad=True)
    t_logits = th @ tw.T
    kw = dict(temperature=2.0, shared_weight=0.6, uld_weight=1.5, loss="jsd", beta=0.3, uld_over=uld_over)
    targets = torch.randint(0, VS, (n,), generator=g)  # some shared, some student-only
    want = cross_tokenizer_kd(h @ w.T + b, t_logits, partial(), num_items=20, targets=targets, **kw)
    want_grads = torch.autograd.grad(want, (h, w, b))
    fn = ChunkedCrossTokenizerKD(chunk_size=4, **{k: v for k, v in kw.items()})
    teacher = {"teacher_logits": t_logits} if source == "logits" else {"teacher_hidden": th, "teacher_weight": tw}
    got = fn(h, w, partial(), student_bias=b, num_items=20, targets=targets, **teacher)
    grads = torch.autograd.grad(got, (h, w, b))
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    for a, e in zip(grads, want_grads):
        assert torch.allclose(a, e, rtol=1e-9, atol=1e-12)
    assert th.grad is None and tw.grad is None  # the teacher is frozen: nothing flows to it


def test_chunked_with_no_pairs_is_zero_and_under_autocast_stays_fp32():
    fn = ChunkedCrossTokenizerKD(chunk_size=2)
    w = torch.randn(VS, H, requires_grad=True)
    out = fn(torch.zeros(0, H), w, partial(), teacher_logits=torch.zeros(0, VT))
    out.backward()
    assert out.item() == 0.0 and w.grad.abs().max() == 0
    h = torch.randn(5, H)
    t = torch.randn(5, VT)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = fn(h, w, partial(), teacher_logits=t)
    assert auto.dtype == torch.float32
    assert auto.item() == pytest.approx(fn(h, w, partial(), teacher_logits=t).item(), rel=1e-6)


def test_bad_weights_are_one_line_user_errors():
    with pytest.raises(UserError, match=r"invalid value for 'strategy.alignment.cross_tokenizer.uld_weight': -1"):
        ChunkedCrossTokenizerKD(uld_weight=-1)
    with pytest.raises(UserError, match=r"one term must count"):
        ChunkedCrossTokenizerKD(shared_weight=0, uld_weight=0)
    with pytest.raises(UserError, match=r"'strategy.alignment.cross_tokenizer.uld_over': 'rest' \(allowed: full, unm"):
        ChunkedCrossTokenizerKD(uld_over="rest")
