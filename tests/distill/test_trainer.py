"""The distill Trainer's own callbacks on a toy module (seconds): StepMetrics logs through the Trainer's
logger (lr, tokens/s, the last step) and the progress bar counts steps out of max_steps."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from stratos.distill.trainer import StepMetrics, StepProgressBar, build_trainer


class Toy(L.LightningModule):
    """A linear model on dict batches shaped like the stage's (attention_mask counts the tokens)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.lin(batch["x"]).pow(2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return {"loss": loss}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(n: int = 12, batch: int = 4):
    """n rows, `batch` per step: 3 steps per epoch, so a run of 7 steps crosses two epoch boundaries."""
    rows = [{"x": torch.randn(2), "attention_mask": torch.tensor([1, 1, 1, 0])} for _ in range(n)]
    return torch.utils.data.DataLoader(rows, batch_size=batch)


def trainer_for(tmp_path, *, max_steps=7, every=3, checkpoint_every=4, progress_bar=False):
    logger = CSVLogger(str(tmp_path / "logs"), name="")
    return build_trainer(ckpt_dir=str(tmp_path / "ckpt"), accelerator="cpu", devices=1, distributed="auto",
                         precision="32-true", max_steps=max_steps, max_minutes=0, val_every_n_steps=1000,
                         checkpoint_every_n_steps=checkpoint_every, grad_clip=0, progress_bar=progress_bar,
                         logger=logger, log_every_n_steps=every)


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_step_metrics_log_lr_tokens_and_the_last_step(tmp_path):
    trainer, stats = trainer_for(tmp_path)
    trainer.fit(Toy(), loader())
    logged = rows(tmp_path / "logs" / "version_0" / "metrics.csv")
    # Lightning logs after steps 3 and 6 (its 0-based `step` column: 2, 5); StepMetrics adds the last one, 7
    assert [int(r["step"]) for r in logged] == [2, 5, 6]
    assert all(r["train/loss"] and float(r["train/lr"]) == pytest.approx(0.1) for r in logged)
    assert all(float(r["train/tokens_per_s"]) > 0 for r in logged)
    assert float(logged[-1]["train/loss"]) == pytest.approx(stats.last_loss, abs=1e-6)
    assert logged[-1]["epoch"] == "2"  # the epoch of step 7 (3 steps per epoch), not the one after it
    assert stats.tokens == 7 * 4 * 3 and stats.padding_share == 0.25


def test_a_last_step_lightning_logged_is_not_logged_twice(tmp_path):
    trainer, _ = trainer_for(tmp_path, max_steps=6)
    trainer.fit(Toy(), loader())
    assert [int(r["step"]) for r in rows(tmp_path / "logs" / "version_0" / "metrics.csv")] == [2, 5]


def desc(tq) -> str:
    return tq.desc.removesuffix(": ")  # tqdm adds the separator


class Recorder(L.Callback):
    def __init__(self, bar: StepProgressBar) -> None:
        self.bar, self.seen = bar, []

    def on_train_start(self, trainer, pl_module) -> None:
        tq = self.bar.train_progress_bar
        self.seen.append(("start", tq.n, tq.total, desc(tq)))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.seen.append(("epoch", self.bar.train_progress_bar.n, self.bar.train_progress_bar.total))


def test_progress_bar_counts_steps_out_of_max_steps_across_epochs_and_resume(tmp_path):
    trainer, _ = trainer_for(tmp_path, progress_bar=True)
    bar = next(c for c in trainer.callbacks if isinstance(c, StepProgressBar))
    assert trainer.progress_bar_callback is bar  # Lightning's own default bar is replaced, not doubled
    rec = Recorder(bar)
    trainer.callbacks.append(rec)
    trainer.fit(Toy(), loader())
    tq = bar.train_progress_bar
    assert (tq.n, tq.total, desc(tq)) == (7, 7, "step 7/7")
    assert rec.seen[0] == ("start", 0, 7, "step 0/7")
    assert [s[1:] for s in rec.seen[1:]] == [(0, 7), (3, 7), (6, 7)]  # the bar never restarts at an epoch

    resumed, _ = trainer_for(tmp_path, max_steps=9, progress_bar=True)
    bar = next(c for c in resumed.callbacks if isinstance(c, StepProgressBar))
    rec = Recorder(bar)
    resumed.callbacks.append(rec)
    resumed.fit(Toy(), loader(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))  # saved at step 4
    assert rec.seen[0] == ("start", 4, 9, "step 4/9")
    assert desc(bar.train_progress_bar) == "step 9/9"


def test_no_progress_bar_when_disabled(tmp_path):
    trainer, _ = trainer_for(tmp_path, progress_bar=False)
    assert not any(isinstance(c, StepProgressBar) for c in trainer.callbacks)
    assert any(isinstance(c, StepMetrics) for c in trainer.callbacks)


def test_a_launch_resumed_at_the_last_step_still_reports_the_final_loss(tmp_path):
    trainer, stats = trainer_for(tmp_path, max_steps=8, checkpoint_every=4)
    trainer.fit(Toy(), loader())
    again, resumed = trainer_for(tmp_path, max_steps=8, checkpoint_every=4)
    again.fit(Toy(), loader(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))  # saved at step 8: nothing to train
    assert again.global_step == 8 and resumed.tokens == 0
    assert resumed.last_loss == stats.last_loss is not None
