"""Identities of the KD losses, and chunked == plain (values and gradients) for every loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from stratos.config import AlignmentConfig
from stratos.distill import losses as L
from stratos.errors import UserError

N, H, HT, V = 29, 6, 10, 41  # odd sizes so that no chunk size divides evenly by accident


def _data(dtype=torch.float64, seed=0, masked=(0, 5, 6, 17), bias=False):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(N, H, generator=g, dtype=dtype).requires_grad_()
    W = torch.randn(V, H, generator=g, dtype=dtype).requires_grad_()
    b = torch.randn(V, generator=g, dtype=dtype).requires_grad_() if bias else None
    th = torch.randn(N, HT, generator=g, dtype=dtype)
    tw = 1.5 * torch.randn(V, HT, generator=g, dtype=dtype)
    y = torch.randint(0, V, (N,), generator=g)
    y[list(masked)] = L.IGNORE_INDEX
    return h, W, b, th, tw, y


def _logits(h, W, b=None):
    return h @ W.T if b is None else h @ W.T + b


def _lp(g, shape=(7, V), scale=2.0, dtype=torch.float64):
    return F.log_softmax(scale * torch.randn(*shape, generator=g, dtype=dtype), -1)


# ----------------------------------------------------------------------------- identities
@pytest.mark.parametrize("loss", L.LOSSES)
def test_equal_distributions_give_zero(loss):
    lp = _lp(torch.Generator().manual_seed(1))
    d = L.divergence(lp, lp.clone(), loss, beta=0.3, alpha=0.2)
    assert d.shape == (7,)
    assert d.abs().max() < 1e-12
    z = torch.randn(2, 5, V, dtype=torch.float64)
    labels = torch.randint(0, V, (2, 5))
    assert abs(float(L.kd_loss(z, z.clone(), labels, loss, temperature=2.0))) < 1e-12


@pytest.mark.parametrize("loss", L.LOSSES)
def test_divergences_positive_for_different_distributions(loss):
    g = torch.Generator().manual_seed(2)
    d = L.divergence(_lp(g), _lp(g), loss, beta=0.3, alpha=0.2)
    assert (d > 1e-4).all()


def test_forward_and_reverse_kl_match_the_definition():
    g = torch.Generator().manual_seed(3)
    s, t = _lp(g), _lp(g)
    p, q = t.exp(), s.exp()
    assert torch.allclose(L.forward_kl(s, t), (p * (t - s)).sum(-1), atol=1e-12)
    assert torch.allclose(L.reverse_kl(s, t), (q * (s - t)).sum(-1), atol=1e-12)


def test_jsd_endpoints_symmetry_and_definition():
    g = torch.Generator().manual_seed(4)
    s, t = _lp(g), _lp(g)
    assert torch.equal(L.generalized_jsd(s, t, 0.0), L.forward_kl(s, t))
    assert torch.equal(L.generalized_jsd(s, t, 1.0), L.reverse_kl(s, t))
    assert torch.allclose(L.generalized_jsd(s, t, 0.5), L.generalized_jsd(t, s, 0.5), atol=1e-12)
    beta = 0.3
    p, q = t.exp(), s.exp()
    m = beta * p + (1 - beta) * q
    want = beta * (p * (p / m).log()).sum(-1) + (1 - beta) * (q * (q / m).log()).sum(-1)
    assert torch.allclose(L.generalized_jsd(s, t, beta), want, atol=1e-12)
    # the symmetric JSD is bounded by log 2
    assert (L.generalized_jsd(s, t, 0.5) <= math.log(2) + 1e-12).all()


def test_skew_kls_definition_and_endpoints():
    g = torch.Generator().manual_seed(5)
    s, t = _lp(g), _lp(g)
    p, q = t.exp(), s.exp()
    a = 0.2
    assert torch.allclose(L.skew_kl(s, t, a), (p * (p / (a * p + (1 - a) * q)).log()).sum(-1), atol=1e-12)
    assert torch.allclose(L.skew_reverse_kl(s, t, a), (q * (q / ((1 - a) * p + a * q)).log()).sum(-1), atol=1e-12)
    assert torch.allclose(L.skew_kl(s, t, 0.0), L.forward_kl(s, t), atol=1e-12)
    assert torch.allclose(L.skew_reverse_kl(s, t, 0.0), L.reverse_kl(s, t), atol=1e-12)
    assert L.skew_kl(s, t, 1.0).abs().max() < 1e-12  # m = p


def test_tvd_symmetric_and_bounded():
    g = torch.Generator().manual_seed(6)
    s, t = _lp(g), _lp(g)
    assert torch.allclose(L.tvd(s, t), L.tvd(t, s), atol=1e-15)
    assert torch.allclose(L.tvd(s, t), 0.5 * (s.exp() - t.exp()).abs().sum(-1))
    assert ((L.tvd(s, t) > 0) & (L.tvd(s, t) <= 1)).all()


def test_temperature_scaling_and_masking():
    h, W, _, th, tw, y = _data()
    zs, zt = _logits(h, W), _logits(th, tw)
    keep = y != L.IGNORE_INDEX
    T = 3.0
    per = L.forward_kl(F.log_softmax(zs[keep] / T, -1), F.log_softmax(zt[keep] / T, -1))
    got = L.kd_loss(zs, zt, y, "forward_kl", temperature=T)
    assert torch.allclose(got, T**2 * per.mean(), atol=1e-12)
    # masked positions do not matter, whatever their logits
    zs2 = zs.detach().clone()
    zs2[~keep] = 1e4 * torch.randn(int((~keep).sum()), V, dtype=zs.dtype)
    assert torch.allclose(L.kd_loss(zs2, zt, y, "forward_kl", temperature=T), got)
    # num_items replaces the token count as the divisor (gradient accumulation)
    got_n = L.kd_loss(zs, zt, y, "forward_kl", temperature=T, num_items=100)
    assert torch.allclose(got_n, got * int(keep.sum()) / 100)


def test_ce_kd_mixing_means_what_it_says():
    h, W, _, th, tw, y = _data()
    zs, zt = _logits(h, W), _logits(th, tw)
    ce = F.cross_entropy(zs, y, ignore_index=-100)  # torch's per-token mean over unmasked tokens
    kd = L.kd_loss(zs, zt, y, "reverse_kl", temperature=2.0)
    assert torch.allclose(L.ce_loss(zs, y), ce)
    for w in (0.0, 0.25, 1.0):
        out = L.distill_loss(zs, zt, y, kd_weight=w, loss="reverse_kl", temperature=2.0)
        assert torch.allclose(out["loss"], (1 - w) * ce + w * kd)
    assert torch.equal(L.distill_loss(zs, None, y, kd_weight=0.0)["loss"], L.ce_loss(zs, y))


@pytest.mark.parametrize("loss", L.LOSSES)
def test_all_masked_gives_zero_not_nan(loss):
    h, W, _, th, tw, y = _data()
    y = torch.full_like(y, L.IGNORE_INDEX)
    out = L.distill_loss(_logits(h, W), _logits(th, tw), y, kd_weight=0.5, loss=loss)
    assert out["loss"].item() == 0.0
    out["loss"].backward()
    assert torch.equal(W.grad, torch.zeros_like(W))
    h.grad = W.grad = None
    c = L.ChunkedDistillLoss(loss=loss, kd_weight=0.5, chunk_size=4)(h, W, y, teacher_hidden=th, teacher_weight=tw)
    assert c["loss"].item() == 0.0 and float(c["ce"]) == 0.0 and float(c["kd"]) == 0.0
    c["loss"].backward()
    assert torch.equal(h.grad, torch.zeros_like(h)) and torch.equal(W.grad, torch.zeros_like(W))


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="strategy.alignment.loss"):
        L.ChunkedDistillLoss(loss="kl")
    with pytest.raises(UserError, match="temperature"):
        L.kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), temperature=0.0)
    with pytest.raises(UserError, match="beta"):
        L.ChunkedDistillLoss(loss="jsd", beta=1.5)
    with pytest.raises(UserError, match="kd_weight"):
        L.ChunkedDistillLoss(kd_weight=-0.1)
    with pytest.raises(UserError, match="chunk_size"):
        L.ChunkedDistillLoss(chunk_size=-1)


# ----------------------------------------------------------------------------- chunked == plain
def _grads(loss_value, *xs):
    return torch.autograd.grad(loss_value, [x for x in xs if x is not None])


def _check_chunked(loss, T, w, chunk, dtype, tol, source="hidden", bias=False, seed=0):
    h, W, b, th, tw, y = _data(dtype, seed=seed, bias=bias)
    ref = L.distill_loss(_logits(h, W, b), _logits(th, tw), y, kd_weight=w, loss=loss, temperature=T,
                         beta=0.3, alpha=0.2)
    teacher = {"teacher_hidden": th, "teacher_weight": tw} if source == "hidden" else {"teacher_logits": th @ tw.T}
    fn = L.ChunkedDistillLoss(loss=loss, temperature=T, kd_weight=w, beta=0.3, alpha=0.2, chunk_size=chunk)
    out = fn(h, W, y, student_bias=b, **teacher)
    for key in ("loss", "ce", "kd"):
        assert torch.allclose(out[key], ref[key].detach(), atol=tol, rtol=tol), (key, out[key], ref[key])
    assert not out["ce"].requires_grad and not out["kd"].requires_grad
    for got, want in zip(_grads(out["loss"], h, W, b), _grads(ref["loss"], h, W, b)):
        assert got.dtype == dtype
        assert torch.allclose(got, want, atol=tol, rtol=tol), (got - want).abs().max()


@pytest.mark.parametrize("loss", L.LOSSES)
@pytest.mark.parametrize("chunk", [1, 4, 7, 0, 1000])  # 7 does not divide 25 kept tokens; 0 = auto; > n
def test_chunked_equals_plain_float64(loss, chunk):
    for T, w in ((1.0, 0.5), (2.0, 0.3), (0.7, 1.0), (2.0, 0.0)):
        _check_chunked(loss, T, w, chunk, torch.float64, 1e-10)


@pytest.mark.parametrize("loss", L.LOSSES)
def test_chunked_equals_plain_float32(loss):
    for chunk in (3, 16):
        _check_chunked(loss, 2.0, 0.5, chunk, torch.float32, 1e-5, seed=1)
        _check_chunked(loss, 1.0, 1.0, chunk, torch.float32, 1e-5, seed=2)


@pytest.mark.parametrize("loss", ["forward_kl", "jsd"])
def test_chunked_teacher_logits_and_bias(loss):
    _check_chunked(loss, 2.0, 0.5, 5, torch.float64, 1e-10, source="logits", bias=True)
    _check_chunked(loss, 1.0, 1.0, 6, torch.float32, 1e-5, source="logits", bias=True)


def test_chunked_batched_shapes_frozen_head_and_grad_scaling():
    h, W, _, th, tw, y = _data()
    fn = L.ChunkedDistillLoss(loss="skew_kl", kd_weight=0.4, chunk_size=5)
    # (B, T, H) hidden states with (B, T) labels give the same result as the flat (N, H) ones
    B = 1
    out = fn(h.reshape(B, N, H), W.detach(), y.reshape(B, N), teacher_hidden=th.reshape(B, N, HT), teacher_weight=tw)
    flat = fn(h, W, y, teacher_hidden=th, teacher_weight=tw)
    assert torch.allclose(out["loss"], flat["loss"])
    (gh,) = torch.autograd.grad(3.0 * out["loss"], h)  # frozen LM head (LoRA): only dh; upstream grad 3
    (gh1,) = torch.autograd.grad(flat["loss"], h)
    assert torch.allclose(gh, 3.0 * gh1)
    with torch.no_grad():  # evaluation: no gradient work, same value
        assert torch.allclose(fn(h, W, y, teacher_hidden=th, teacher_weight=tw)["loss"], flat["loss"])


def test_chunked_bf16_inputs_upcast_per_chunk():
    h, W, _, th, tw, y = _data(torch.float32)
    hb, Wb = h.detach().bfloat16().requires_grad_(), W.detach().bfloat16().requires_grad_()
    out = L.ChunkedDistillLoss(kd_weight=0.5, chunk_size=8)(hb, Wb, y, teacher_hidden=th.bfloat16(),
                                                           teacher_weight=tw.bfloat16())
    ref = L.distill_loss(hb.float() @ Wb.float().T, th.bfloat16().float() @ tw.bfloat16().float().T, y)
    assert out["loss"].dtype == torch.float32
    assert torch.allclose(out["loss"], ref["loss"], atol=1e-5)
    out["loss"].backward()
    assert hb.grad.dtype == torch.bfloat16 and Wb.grad.dtype == torch.bfloat16


def test_chunked_keeps_no_vocab_sized_tensor_for_backward():
    h, W, _, th, tw, y = _data(torch.float32)
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = L.ChunkedDistillLoss(kd_weight=0.5, chunk_size=4)(h, W, y, teacher_hidden=th, teacher_weight=tw)
    assert saved and max(saved) <= max(N * H, V * H) < N * V  # only dh and dW are kept
    out["loss"].backward()


def test_report_ce_off_skips_ce_only_for_pure_kd():
    h, W, _, th, tw, y = _data()
    out = L.ChunkedDistillLoss(kd_weight=1.0, temperature=2.0, report_ce=False)(h, W, y, teacher_hidden=th,
                                                                               teacher_weight=tw)
    ref = L.kd_loss(_logits(h, W), _logits(th, tw), y, temperature=2.0)
    assert torch.isnan(out["ce"]) and torch.allclose(out["loss"], ref)


def test_from_config_and_teacher_checks():
    cfg = OmegaConf.structured(AlignmentConfig(loss="tvd", temperature=1.5, kd_weight=0.2, chunk_size=64))
    fn = L.ChunkedDistillLoss.from_config(cfg)
    assert (fn.loss, fn.temperature, fn.kd_weight, fn.chunk_size) == ("tvd", 1.5, 0.2, 64)
    h, W, _, th, tw, y = _data()
    with pytest.raises(ValueError, match="exactly one"):
        fn(h, W, y)
    with pytest.raises(ValueError, match="vocab"):
        fn(h, W, y, teacher_logits=torch.zeros(N, V + 1, dtype=h.dtype))
    assert float(L.ChunkedDistillLoss(kd_weight=0.0)(h, W, y)["kd"]) == 0.0  # CE only: no teacher needed
    assert L.auto_chunk_size(32000) == 262 and L.auto_chunk_size(512) == 16384 and L.auto_chunk_size(10**7) == 16


# ----------------------------------------------------------------------------- sparse top-k
def _topk(zt, k, T):
    lp = F.log_softmax(zt / T, -1)
    vals, ids = lp.topk(k, -1)
    tail = torch.log1p(-vals.exp().sum(-1).clamp(max=1.0))
    return ids, vals, tail


def test_topk_kl_approaches_full_kl_as_k_grows():
    h, W, _, th, tw, y = _data()
    zs, zt = _logits(h, W).detach(), _logits(th, tw)
    full = float(L.kd_loss(zs, zt, y, temperature=2.0))
    values = [float(L.topk_kd_loss(zs, *_topk(zt, k, 2.0)[:2], y, _topk(zt, k, 2.0)[2], temperature=2.0))
              for k in (1, 2, 4, 8, 16, 32, V)]
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))  # finer buckets never lose information
    assert values[-1] == pytest.approx(full, abs=1e-10)  # k = V: no tail, the full KL
    assert values[-2] <= full and (full - values[-2]) < 0.1 * (full - values[0])
    # without an explicit tail the function derives it from the top-k mass
    ids, lp, tail = _topk(zt, 8, 2.0)
    assert torch.allclose(L.topk_kd_loss(zs, ids, lp, y, None, 2.0), L.topk_kd_loss(zs, ids, lp, y, tail, 2.0))


@pytest.mark.parametrize("k", [1, 5, V])
def test_chunked_topk_equals_plain_topk(k):
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        h, W, _, th, tw, y = _data(dtype, seed=k)
        ids, lp, tail = _topk(_logits(th, tw), k, 2.0)
        lp16, tail16 = lp.half(), tail.half()  # as read back from the store
        zs = _logits(h, W)
        ce = L.ce_loss(zs, y)
        ref = 0.7 * ce + 0.3 * L.topk_kd_loss(zs, ids.short(), lp16, y, tail16, temperature=2.0)
        fn = L.ChunkedDistillLoss(kd_weight=0.3, temperature=2.0, chunk_size=6)
        out = fn(h, W, y, teacher_topk=(ids.short(), lp16, tail16))
        assert torch.allclose(out["loss"], ref, atol=tol, rtol=tol)
        for got, want in zip(_grads(out["loss"], h, W), _grads(ref, h, W)):
            assert torch.allclose(got, want, atol=tol, rtol=tol)
    with pytest.raises(UserError, match="forward_kl"):
        L.ChunkedDistillLoss(loss="jsd")(h, W, y, teacher_topk=(ids, lp, tail))


def test_chunked_reads_shifted_teacher_logits_without_copying():
    g = torch.Generator().manual_seed(7)
    B, T = 3, 8
    h = torch.randn(B, T - 1, H, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(V, H, generator=g, dtype=torch.float64)
    full = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    labels = torch.randint(0, V, (B, T - 1), generator=g)
    labels[0, :3] = L.IGNORE_INDEX
    fn = L.ChunkedDistillLoss(kd_weight=0.6, chunk_size=4)
    for shifted in (full[:, :-1], full[:, 1:]):  # non-contiguous views, as the LightningModule passes
        view, row_of = L._row_view(shifted)
        assert view.untyped_storage().data_ptr() == full.untyped_storage().data_ptr()  # a view, not a copy
        assert torch.equal(view.index_select(0, row_of(torch.arange((T - 1) * B))), shifted.reshape(-1, V))
        got = fn(h, W, labels, teacher_logits=shifted)["loss"]
        want = L.distill_loss(h @ W.T, shifted.contiguous(), labels, kd_weight=0.6)["loss"]
        assert torch.allclose(got, want, atol=1e-12)


def test_chunked_ignores_autocast():
    h, W, _, th, tw, y = _data(torch.float32)
    fn = L.ChunkedDistillLoss(kd_weight=0.5, chunk_size=8)
    want = L.distill_loss(h @ W.T, th @ tw.T, y, kd_weight=0.5)["loss"]  # fp32, outside autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as under Lightning's bf16-mixed precision
        got = fn(h, W, y, teacher_hidden=th, teacher_weight=tw)["loss"]
    assert got.dtype == torch.float32 and torch.allclose(got, want, atol=1e-5, rtol=1e-5)
