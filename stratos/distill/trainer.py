"""Build the Lightning Trainer for the distill stage from `cfg.trainer`.

Lightning is the engine for everything that is not distillation itself: devices, DDP/FSDP/DeepSpeed
(`trainer.distributed`, Lightning's `strategy`), precision, gradient clipping, checkpoints (`step_{step:06d}.ckpt` + `last.ckpt`,
from which a re-run or a requeued Slurm job resumes) and the progress bar.
"""

from __future__ import annotations

import logging
import warnings

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from stratos import artifacts
from stratos.resilience import trainer_kwargs


# Lightning's start-up chatter (accelerator inventory, tips, an `srun` hint whenever Slurm is merely
# installed) buries Stratos' own progress lines; real warnings still come through.
for _name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*`srun` command is available.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*modules in eval mode.*")


class LossCurve(Callback):
    """Keeps (step, loss, lr, + ce / kd / hidden_mse / corpus_ce when the step reports them) every `every`
    steps and the number of real tokens trained on.

    The curve is written atomically whenever a checkpoint is saved and when training ends, so a
    resumed run continues the same curve (entries after the resumed step are dropped).
    """

    def __init__(self, url: str, every: int = 10) -> None:
        self.url, self.every = url, every
        self.rows: list[dict] = []
        self.tokens = 0
        self.positions = 0  # batch positions incl. padding: 1 - tokens / positions = padding share
        self.computed = 0  # positions the forwards computed (length slices skip some padding)

    def on_train_start(self, trainer, pl_module) -> None:
        if artifacts.exists(self.url) and trainer.global_step > 0:
            self.rows = [r for r in artifacts.read_jsonl(self.url) if r["step"] <= trainer.global_step]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.tokens += int(batch["attention_mask"].sum())
        self.positions += batch["attention_mask"].numel()
        self.computed += getattr(pl_module, "last_positions", 0) or batch["attention_mask"].numel()
        step = trainer.global_step
        if step % self.every == 0 or step == trainer.max_steps:
            parts = outputs if isinstance(outputs, dict) else {"loss": outputs}
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            row = {"step": step, "loss": round(float(parts["loss"]), 6), "lr": lr}
            row.update({f"train/{k}": round(float(parts[k]), 6) for k in ("ce", "kd", "hidden_mse", "corpus_ce")
                        if k in parts})
            self.rows.append(row)

    @property
    def padding_share(self) -> float | None:
        return round(1 - self.tokens / self.positions, 4) if self.positions else None

    @property
    def computed_padding_share(self) -> float | None:
        """Share of the positions the forwards computed that were padding."""
        return round(1 - self.tokens / self.computed, 4) if self.computed else None

    def last(self, key: str = "train/loss"):
        return self.rows[-1]["loss"] if self.rows else None

    def _write(self, trainer) -> None:
        if trainer.is_global_zero:
            artifacts.write_jsonl(self.url, self.rows)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._write(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer)


def build_trainer(*, ckpt_dir: str, curve_url: str, accelerator: str, devices: int, distributed: str, precision: str,
                  max_steps: int, max_minutes: float, val_every_n_steps: int, checkpoint_every_n_steps: int,
                  grad_clip: float, progress_bar: bool, **stage_settings: object) -> tuple[L.Trainer, LossCurve]:
    """The `trainer` group's `_target_`: `instantiate(cfg.trainer, ckpt_dir=..., curve_url=...)`.

    The group's other keys (`stage_settings`: lr, batch_size, weight_decay, warmup_steps, num_threads,
    num_workers, group_by_length, length_slices) configure the module and the loaders
    (stratos/distill/fit.py), not Lightning's Trainer.
    """
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="step_{step:06d}", auto_insert_metric_name=False,
                           every_n_train_steps=int(checkpoint_every_n_steps), save_last=True, save_top_k=1,
                           monitor=None)
    curve = LossCurve(curve_url)
    val_every = min(int(val_every_n_steps), int(max_steps))
    trainer = L.Trainer(
        accelerator=accelerator, devices=int(devices), strategy=distributed, precision=precision,
        max_steps=int(max_steps), max_epochs=-1,
        max_time={"minutes": float(max_minutes)} if float(max_minutes) > 0 else None,
        val_check_interval=val_every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        gradient_clip_val=float(grad_clip) or None, logger=False,
        enable_progress_bar=bool(progress_bar), enable_model_summary=False, default_root_dir=ckpt_dir,
        log_every_n_steps=10, deterministic=False,
        **trainer_kwargs([ckpt, curve]),  # preemption checkpoint + requeue, resumable data order
    )
    return trainer, curve


def validate_trainer(tr, will_train: bool = True) -> None:
    """Range checks of the `trainer` group that its types cannot express (UserError, one line)."""
    from stratos.errors import check_values

    checks = [
        ("trainer.max_steps", tr.max_steps, int(tr.max_steps) > 0, "an integer > 0"),
        ("trainer.batch_size", tr.batch_size, int(tr.batch_size) > 0, "an integer > 0"),
        ("trainer.devices", tr.devices, int(tr.devices) >= 1, "an integer >= 1"),
        ("trainer.lr", tr.lr, float(tr.lr) > 0, "a number > 0"),
        ("trainer.length_slices", tr.length_slices, int(tr.length_slices) >= 0,
         "an integer >= 0 (0 = auto, 1 = one forward over the whole padded batch)"),
        ("trainer.max_minutes", tr.max_minutes, float(tr.max_minutes) >= 0, "minutes >= 0 (0 = no limit)"),
        ("trainer.warmup_steps", tr.warmup_steps, int(tr.warmup_steps) >= 0, "an integer >= 0"),
        ("trainer.num_threads", tr.num_threads, int(tr.num_threads) >= 0, "an integer >= 0 (0 = torch default)"),
        ("trainer.num_workers", tr.num_workers, int(tr.num_workers) >= 0, "an integer >= 0"),
    ]
    check_values(checks)
    if will_train:
        check_with_lightning(tr)


def check_with_lightning(tr) -> None:
    """Let Lightning judge accelerator / devices / strategy / precision on this machine, before any work.

    Building a bare `Trainer` runs Lightning's own checks (a GPU accelerator without a GPU, more devices
    than there are, 16-bit mixed precision on CPU, a strategy that is not installed) in well under a
    second, instead of minutes into the run after plan and data have written their directories.
    """
    from stratos.errors import UserError

    settings = {"accelerator": str(tr.accelerator), "devices": int(tr.devices), "distributed": str(tr.distributed),
                "precision": str(tr.precision)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            L.Trainer(accelerator=settings["accelerator"], devices=settings["devices"],
                      strategy=settings["distributed"], precision=settings["precision"], logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    except Exception as e:  # Lightning's MisconfigurationException, ValueError, RuntimeError, ImportError
        reason = " ".join(str(e).split()) or type(e).__name__
        text = str(e).lower()
        words = {"precision": "precision", "distributed": "strategy", "accelerator": "accelerator", "devices": "device"}
        named = [k for k, word in words.items() if word in text]
        quoted = [k for k, v in settings.items() if len(str(v)) > 1 and str(v).lower() in text]
        key = (named or quoted or ["accelerator"])[0]
        raise UserError(f"invalid value for 'trainer.{key}': {settings[key]!r} on this machine (trainer settings "
                        f"{settings}; Lightning says: {reason[:300]})") from None
