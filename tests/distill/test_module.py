"""DistillModule under a real Lightning Trainer: precision handling of the frozen teacher."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from stratos.distill.module import DistillModule
from stratos.models.teacher import HFTeacher
from tests.distill.test_slices import LENGTHS, right_padded_batch, tiny_llama


def in_memory_teacher(seed=3):
    teacher = HFTeacher.__new__(HFTeacher)  # the real class around a model built in memory
    teacher.model = tiny_llama(seed=seed, hidden=48).eval()
    for p in teacher.model.parameters():
        p.requires_grad_(False)
    return teacher


def fit_one_step(module, precision):
    batch = right_padded_batch(LENGTHS)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=2, precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, torch.utils.data.DataLoader([batch, batch], batch_size=None))
    return batch


@pytest.mark.parametrize("precision, dtype", [("bf16-mixed", torch.bfloat16), ("32-true", torch.float32)])
def test_frozen_teacher_is_stored_in_bf16_only_under_bf16(precision, dtype):
    teacher = in_memory_teacher()
    module = DistillModule(tiny_llama(seed=5), "logit", {"kd_weight": 0.5, "temperature": 2.0}, 1e-3, 0.0, 1, 10,
                           teacher=teacher)
    batch = fit_one_step(module, precision)
    assert {p.dtype for p in teacher.model.parameters()} == {dtype}
    assert {p.dtype for p in module.student.parameters()} == {torch.float32}  # the student keeps fp32 masters
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision.startswith("bf16")):
        out = module.losses(batch)
    assert torch.isfinite(out["loss"]) and out["kd"] > 0


def test_bf16_teacher_gives_the_kd_loss_of_the_autocast_fp32_teacher():
    """Storing the teacher in bf16 changes only rounding: KD within 1 % of the fp32 teacher under autocast."""
    batch = right_padded_batch(LENGTHS)
    teacher = in_memory_teacher()
    module = DistillModule(tiny_llama(seed=5), "logit", {"kd_weight": 1.0, "temperature": 1.0}, 1e-3, 0.0, 1, 10,
                           teacher=teacher)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        before = module.losses(batch)["kd"].item()
        teacher.model.to(torch.bfloat16)
        after = module.losses(batch)["kd"].item()
    assert after == pytest.approx(before, rel=1e-2)


def _tok_and_examples(vocab):
    from stratos.distill.examples import TextExample
    from stratos.models.tokenizer import train_tokenizer

    texts = [f"hand {i}m {i + 1}p {i + 2}s waits on {i}m and {i + 3}p" for i in range(1, 7)] * 5
    ex = [TextExample(f"hand {i}m {i + 1}p", f"waits on {i}m and {i + 3}p") for i in range(1, 7)]
    return train_tokenizer(texts, vocab), ex


def _teacher_for(tok, seed=3):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    teacher = HFTeacher.__new__(HFTeacher)
    teacher.model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                                                 max_position_embeddings=64, tie_word_embeddings=True)).eval()
    teacher.tokenizer = tok
    return teacher


class LogitsOnly(HFTeacher):
    plain_head = False  # the loss then reads the teacher's (B, T, V) logits instead of its hidden states


@pytest.mark.parametrize("plain_head", [True, False])
def test_cross_tokenizer_mode_with_one_tokenizer_is_logit_kd(plain_head):
    """The identity at module level: same tokenizer, shared = every id -> the loss of mode logit."""
    from stratos.distill.examples import ExampleDataset, collate
    from stratos.distill.token_alignment import shared_vocab

    tok, ex = _tok_and_examples(300)
    teacher = _teacher_for(tok)
    if not plain_head:
        teacher.__class__ = LogitsOnly
    ds = ExampleDataset(tok, ex, [], 0.0, 64, 0, teacher_tokenizer=tok)
    batch = collate(tok.pad_token_id)([ds[i] for i in range(len(ds))])
    assert torch.equal(batch["teacher_input_ids"] * batch["teacher_attention_mask"],
                       batch["input_ids"] * batch["attention_mask"])
    student = _teacher_for(tok, seed=5).model.train()
    align = {"kd_weight": 0.5, "temperature": 2.0}
    logit = DistillModule(student, "logit", align, 1e-3, 0.0, 1, 10, teacher=teacher).losses(batch)
    no_uld = {**align, "cross_tokenizer": {"uld_weight": 0.0}}  # ULD(p, q) is the documented extra term
    cross = DistillModule(student, "cross_tokenizer", no_uld, 1e-3, 0.0, 1, 10, teacher=teacher,
                          shared_vocab=shared_vocab(tok, tok)).losses(batch)
    for k in ("loss", "ce", "kd"):
        assert cross[k].item() == pytest.approx(logit[k].item(), rel=1e-5), k


def test_cross_tokenizer_mode_trains_the_student_on_another_vocabulary():
    from stratos.distill.examples import ExampleDataset, collate
    from stratos.distill.token_alignment import shared_vocab

    s_tok, ex = _tok_and_examples(280)
    t_tok, _ = _tok_and_examples(330)
    teacher = _teacher_for(t_tok)
    ds = ExampleDataset(s_tok, ex, [], 0.0, 64, 0, teacher_tokenizer=t_tok)
    assert 0.5 < ds.xtok_counts["aligned"] / ds.xtok_counts["supervised"] <= 1
    batch = collate(s_tok.pad_token_id)([ds[i] for i in range(len(ds))])
    student = _teacher_for(s_tok, seed=5).model.train()
    module = DistillModule(student, "cross_tokenizer", {"kd_weight": 0.5}, 1e-3, 0.0, 1, 10, teacher=teacher,
                           shared_vocab=shared_vocab(s_tok, t_tok))
    out = module.losses(batch)
    out["loss"].backward()
    assert out["kd"] > 0 and torch.isfinite(out["loss"])
    assert out["loss"].item() == pytest.approx(0.5 * out["ce"].item() + 0.5 * out["kd"].item(), rel=1e-6)
    assert student.model.embed_tokens.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.model.parameters())


def test_on_policy_rows_in_cross_tokenizer_mode_weigh_as_in_logit_mode():
    """Rows marked `on_policy` take KD alone and the data rows (1 - w) CE + w KD, one per-token mean: with one
    tokenizer (every id shared, ULD off) cross-tokenizer mode gives on-policy logit KD's loss, term by term."""
    from types import SimpleNamespace

    from stratos.distill.examples import ExampleDataset, collate
    from stratos.distill.token_alignment import shared_vocab

    tok, ex = _tok_and_examples(300)
    teacher = _teacher_for(tok)
    ds = ExampleDataset(tok, ex, [], 0.0, 64, 0, teacher_tokenizer=tok)
    batch = collate(tok.pad_token_id)([ds[i] for i in range(len(ds))])
    batch["on_policy"] = torch.arange(len(ds)) % 3 == 0  # a third of the rows are "samples"
    student = _teacher_for(tok, seed=5).model.train()
    align = {"kd_weight": 0.5, "temperature": 2.0, "cross_tokenizer": {"uld_weight": 0.0}}
    sampler = SimpleNamespace(scorer="logits")
    logit = DistillModule(student, "logit", align, 1e-3, 0.0, 1, 10, teacher=teacher, on_policy=sampler).losses(batch)
    cross = DistillModule(student, "cross_tokenizer", align, 1e-3, 0.0, 1, 10, teacher=teacher, on_policy=sampler,
                          shared_vocab=shared_vocab(tok, tok)).losses(batch)
    for k in ("loss", "ce", "rollout_kd"):
        assert cross[k].item() == pytest.approx(logit[k].item(), rel=1e-5), k
    batch["on_policy"][:] = True  # fully on-policy: KD alone, CE has no tokens
    cross = DistillModule(student, "cross_tokenizer", align, 1e-3, 0.0, 1, 10, teacher=teacher, on_policy=sampler,
                          shared_vocab=shared_vocab(tok, tok)).losses(batch)
    assert cross["loss"].item() == pytest.approx(cross["rollout_kd"].item(), rel=1e-6) and cross["loss"] > 0
