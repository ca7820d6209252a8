"""Memory formulas: known figures and identities."""

from __future__ import annotations

import numpy as np
import pytest

from stratos.plan import memory as M


def test_full_finetuning_is_16_bytes_per_parameter():
    assert M.student_train_bytes(7e9, 28, 3584, 512, 0, 2.0) == pytest.approx(112e9)


def test_lora_parameter_count_is_exact_for_q_and_v():
    # q: h->h, v: h->d_kv; A is r x in, B is out x r
    r, L, h, dkv = 8, 24, 896, 128
    exact = L * (r * (h + h) + r * (h + dkv))
    assert M.lora_params(r, L, h, dkv, targets=2) == pytest.approx(exact)
    peft_like = M.student_train_bytes(0.5e9, L, h, dkv, r, 2.0)
    assert peft_like == pytest.approx(2.0 * 0.5e9 + 16 * exact)


def test_activations_scale_with_batch_and_add_teacher_logits_in_logit_mode():
    a1 = M.activation_bytes(1, 512, 1024, 24, 32000, 32000, False, 2.0)
    a8 = M.activation_bytes(8, 512, 1024, 24, 32000, 32000, False, 2.0)
    assert a8 == pytest.approx(8 * a1)
    logit = M.activation_bytes(1, 512, 1024, 24, 32000, 32000, True, 2.0)
    assert logit - a1 == pytest.approx(4.0 * 512 * 32000)
    assert a1 == pytest.approx(512 * 1024 * (2 * 24 + 34) + 4 * 512 * 2 * 32000)


def test_per_device_training_memory_logit_vs_generation():
    state, act, tw, tg = 16e9, 2e9, 14e9, 15e9
    # logit: the teacher sits beside the student; states are sharded over devices, activations are not
    assert M.train_bytes_per_device(state, act, tw, tg, True, 2) == pytest.approx((16e9 + 14e9) / 2 + 2e9)
    # generation: the phases alternate; the peak is the larger one
    assert M.train_bytes_per_device(state, act, tw, tg, False, 1) == pytest.approx(max(18e9, 15e9))
    np.testing.assert_allclose(M.train_bytes_per_device(np.array([state]), act, tw, 40e9, np.array([False]), 4),
                               [10e9])


def test_serving_and_usable_memory():
    kv = M.kv_bytes_per_token(24, 128, 2.0)
    assert kv == 2 * 24 * 128 * 2
    assert M.serve_bytes(0.5e9, 8, 24, 128, 2.0, 384, 4) == pytest.approx(0.5e9 + 4 * kv * 384)
    np.testing.assert_allclose(M.usable_bytes_per_device(np.array([80.0, 24.0]), np.array([False, True])),
                               [(0.9 * 80 - 1.5) * 1e9, (0.9 * 24 - 1.0) * 1e9])
