"""Length-sorted slices: the partition is optimal, and a sliced forward (and the training loss and
gradients built on it) equals the whole-batch forward on every real position."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from stratos.distill.module import DistillModule
from stratos.distill.slices import (batch_slices, best_partitions, computed_positions, plan_slices, resolve_slices,
                                    right_padded, sliced_forward)
from stratos.models.hub import lm_parts


def brute_force(lengths, n):
    B = len(lengths)
    return min(sum((b - a) * lengths[a] for a, b in zip((0, *cut), (*cut, B)))
               for cut in itertools.combinations(range(1, B), n - 1))


def test_partition_is_the_brute_force_optimum():
    rng = np.random.default_rng(0)
    for _ in range(150):
        lengths = np.sort(rng.integers(1, 60, rng.integers(1, 9)))[::-1]
        for n, (cost, ends) in enumerate(best_partitions(lengths, len(lengths)), start=1):
            assert cost == brute_force(lengths, n)
            assert len(ends) == n and ends[-1] == len(lengths) and ends == sorted(set(ends))
            assert cost == sum((b - a) * lengths[a] for a, b in zip([0, *ends], ends))


def test_plan_covers_every_row_once_and_saves_positions():
    lengths = torch.tensor([100, 20, 128, 30, 120, 25, 110, 35])
    plan = plan_slices(lengths, max_slices=4)
    assert 1 < len(plan) <= 4
    assert sorted(torch.cat(plan).tolist()) == list(range(8))
    computed = sum(len(rows) * int(lengths[rows].max()) for rows in plan)
    assert computed < 0.7 * 8 * 128
    assert all(int(lengths[a].min()) >= int(lengths[b].max()) for a, b in zip(plan, plan[1:]))  # longest first


@pytest.mark.parametrize("lengths, max_slices", [([64] * 8, 4), ([64, 63, 64, 62], 4), ([10, 90, 50], 1), ([7], 4)])
def test_no_split_when_it_saves_too_little_or_is_off(lengths, max_slices):
    plan = plan_slices(torch.tensor(lengths), max_slices=max_slices)
    assert len(plan) == 1 and plan[0].tolist() == list(range(len(lengths)))  # whole batch, batch order


def test_each_extra_slice_must_save_min_gain():
    lengths = torch.tensor([100] * 4 + [90] * 4)  # 2 slices save 40 of 800 positions: 5 %
    assert len(plan_slices(lengths, 4, min_gain=0.05)) == 2
    assert len(plan_slices(lengths, 4, min_gain=0.06)) == 1


@pytest.mark.parametrize("n, precision, strategy, want", [
    (0, "32-true", "auto", 4), (0, "torch.float32", "auto", 4), (0, "64-true", "ddp", 4),
    (0, "bf16-mixed", "auto", 1), (0, "16-mixed", "ddp", 1), (0, "torch.bfloat16", "auto", 1),
    (3, "bf16-mixed", "auto", 3), (1, "32-true", "auto", 1), (4, "32-true", "fsdp", 1), (0, "32-true", "deepspeed_stage_2", 1),
])
def test_auto_slices_follow_precision_and_sharding(n, precision, strategy, want):
    got, why = resolve_slices(n, precision, strategy)
    assert got == want and why


def test_computed_positions_counts_each_slice_at_its_own_width():
    mask = right_padded_batch([10, 2, 9, 3])["attention_mask"]
    assert computed_positions(mask, [torch.arange(4)]) == 4 * 10
    assert computed_positions(mask, [torch.tensor([0, 2]), torch.tensor([3, 1])]) == 2 * 10 + 2 * 3


def test_left_padding_is_never_sliced():
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])
    right = left.flip(1)
    assert not right_padded(left) and right_padded(right)
    assert len(batch_slices(left, 4)) == 1


def tiny_llama(seed=0, hidden=32, layers=2):
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=48, hidden_size=hidden, num_hidden_layers=layers,
                                        num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                                        max_position_embeddings=128, pad_token_id=0, tie_word_embeddings=True))


def right_padded_batch(lengths, vocab=48, seed=1):
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for r, n in enumerate(lengths):
        ids[r, :n] = torch.randint(3, vocab, (n,), generator=g)
        mask[r, :n] = 1
        labels[r, n // 3:n] = ids[r, n // 3:n]  # a prompt, then supervised tokens
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


LENGTHS = [40, 9, 33, 12, 38, 6, 21, 30]


def test_sliced_forward_equals_the_whole_batch_on_real_positions():
    model = tiny_llama().eval()
    b = right_padded_batch(LENGTHS)
    plan = batch_slices(b["attention_mask"], 4)
    assert len(plan) > 1

    def fn(i, m):  # a tuple output: logits and the last hidden state
        out = model(input_ids=i, attention_mask=m, output_hidden_states=True)
        return out.logits, out.hidden_states[-1]

    with torch.no_grad():
        want_logits, want_hidden = fn(b["input_ids"], b["attention_mask"])
        logits, hidden = sliced_forward(fn, b["input_ids"], b["attention_mask"], plan)
    real = b["attention_mask"].bool()
    assert logits.shape == want_logits.shape and hidden.shape == want_hidden.shape
    torch.testing.assert_close(logits[real], want_logits[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hidden[real], want_hidden[real], rtol=1e-5, atol=1e-5)
    for rows in plan:  # columns trimmed off a slice come back as zeros (nothing reads padding)
        w = int(b["attention_mask"][rows].sum(1).max())
        assert w < hidden.shape[1] or rows is plan[0]
        assert hidden[rows, w:].abs().sum() == 0


@pytest.mark.parametrize("mode, align", [
    ("logit", {"kd_weight": 0.5, "temperature": 2.0}),
    ("hidden", {"kd_weight": 0.5, "hidden_weight": 1.0}),
])
def test_training_loss_and_gradients_do_not_depend_on_slicing(mode, align):
    """The live teacher and the student both run sliced; loss and every gradient match one forward."""
    from stratos.models.teacher import HFTeacher

    teacher = HFTeacher.__new__(HFTeacher)  # an in-memory teacher: the real class around a built model
    teacher.model = tiny_llama(seed=3, hidden=48).eval()
    for p in teacher.model.parameters():
        p.requires_grad_(False)
    b = right_padded_batch(LENGTHS)
    grads, losses = [], []
    for slices in (1, 4):
        torch.manual_seed(7)  # same hidden-state projection init
        module = DistillModule(tiny_llama(seed=5), mode, align, 1e-3, 0.0, 1, 10, teacher=teacher, length_slices=slices)
        out = module.losses(b)
        out["loss"].backward()
        losses.append(out)
        grads.append({n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None})
    for key in losses[0]:
        torch.testing.assert_close(losses[1][key], losses[0][key], rtol=1e-5, atol=1e-6)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-4, atol=1e-6, msg=n)


def test_lm_parts_base_runs_sliced_under_autograd():
    """The student path as DistillModule calls it: base model through slices, then backward."""
    model = tiny_llama()
    base, head = lm_parts(model)
    b = right_padded_batch(LENGTHS)
    plan = batch_slices(b["attention_mask"], 4)
    h = sliced_forward(lambda i, m: base(input_ids=i, attention_mask=m).last_hidden_state,
                       b["input_ids"], b["attention_mask"], plan)
    (h * b["attention_mask"][..., None]).sum().backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0  # tied embeddings got gradients
