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
