"""Build the Lightning Trainer for the distill stage from `cfg.trainer`.

Lightning is the engine for everything that is not distillation itself: devices, DDP/FSDP/DeepSpeed
(`trainer.distributed`, Lightning's `strategy`), precision, gradient clipping, checkpoints (`step_{step:06d}.ckpt` + `last.ckpt`,
from which a re-run or a requeued Slurm job resumes), the step metrics' logger (the `logger` group,
stratos/distill/loggers.py) and the progress bar (steps done out of `max_steps`).
"""

from __future__ import annotations

import logging
import time
import warnings

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar

from stratos.resilience import trainer_kwargs


# Lightning's start-up chatter (accelerator inventory, tips, an `srun` hint whenever Slurm is merely
# installed) buries Stratos' own progress lines; real warnings still come through.
for _name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*`srun` command is available.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*modules in eval mode.*")
# training runs by steps across epochs: a short epoch is no reason to log less often
warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


class StepMetrics(Callback):
    """What the module's `self.log` cannot see, logged through the Trainer's logger with the step's losses:
    train/lr (after the step's scheduler update) and train/tokens_per_s (real tokens this process trained on
    per second since it started training). Also:

    - the last step is always logged, also when it is not a multiple of `log_every_n_steps` (Lightning logs
      only those), so the curve ends at the manifest's final loss;
    - the totals the manifest reports: tokens, padding shares, the last loss.

    Lightning saves the loggers after each logged step, so a killed launch keeps its curve up to its last
    logged step; the launch that resumes from the last checkpoint re-logs the steps after it, and
    `outputs.read_train_metrics` keeps the newer row of each step.
    """

    def __init__(self) -> None:
        self.tokens = 0
        self.positions = 0  # batch positions incl. padding: 1 - tokens / positions = padding share
        self.computed = 0  # positions the forwards computed (length slices skip some padding)
        self.last_loss: float | None = None
        self._t0 = 0.0
        self._first_step = 0
        self._epoch = 0  # of the last step (Lightning counts the epoch on once training ends mid-epoch)
        self._keys: set[str] = set()  # train/* metrics of the last step (a part absent from it is not repeated)

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0, self._first_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.tokens += int(batch["attention_mask"].sum())
        self.positions += batch["attention_mask"].numel()
        self.computed += getattr(pl_module, "last_positions", 0) or batch["attention_mask"].numel()
        parts = outputs if isinstance(outputs, dict) else {"loss": outputs}
        self.last_loss = round(float(parts["loss"]), 6)
        self._epoch = trainer.current_epoch
        self._keys = {f"train/{k}" for k in parts} | {"train/lr", "train/tokens_per_s"}
        pl_module.log("train/lr", float(trainer.optimizers[0].param_groups[0]["lr"]))
        pl_module.log("train/tokens_per_s", self.tokens / max(time.perf_counter() - self._t0, 1e-9))

    def state_dict(self) -> dict:
        # in the checkpoint: a launch resumed from the final step's checkpoint trains nothing, and still
        # reports the final loss
        return {"last_loss": self.last_loss}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_loss = state_dict.get("last_loss")

    @property
    def padding_share(self) -> float | None:
        return round(1 - self.tokens / self.positions, 4) if self.positions else None

    @property
    def computed_padding_share(self) -> float | None:
        """Share of the positions the forwards computed that were padding."""
        return round(1 - self.tokens / self.computed, 4) if self.computed else None

    def on_train_end(self, trainer, pl_module) -> None:
        step = trainer.global_step
        if step == self._first_step or step % trainer.log_every_n_steps == 0:
            return  # nothing trained in this launch, or Lightning logged this step already
        # Lightning's `step` column counts optimizer steps done before the one logged (0-based)
        row = {k: float(v) for k, v in trainer.callback_metrics.items() if k in self._keys}
        for logger in trainer.loggers:
            logger.log_metrics({**row, "epoch": self._epoch}, step=step - 1)


class StepProgressBar(TQDMProgressBar):
    """One training bar over the whole run: optimizer steps done out of `trainer.max_steps` ("step 120/1500").

    The stage trains by steps (`max_epochs=-1`), so Lightning's per-epoch bar restarts every pass over the
    data and its epoch counter has no end; this bar starts at the resumed step and does not reset per epoch.
    """

    def describe(self, trainer) -> str:
        return f"step {trainer.global_step}/{trainer.max_steps}"

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.initial = trainer.global_step
        bar.n = trainer.global_step
        bar.set_description(self.describe(trainer))

    def on_train_epoch_start(self, trainer, *_) -> None:
        pass  # one bar for the run (no per-epoch reset)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar, n = self.train_progress_bar, trainer.global_step
        if bar is not None and self._should_update(n, bar.total):
            bar.n = n
            bar.set_description(self.describe(trainer), refresh=False)
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))


def build_trainer(*, ckpt_dir: str, accelerator: str, devices: int, distributed: str, precision: str,
                  max_steps: int, max_minutes: float, val_every_n_steps: int, checkpoint_every_n_steps: int,
                  grad_clip: float, progress_bar: bool, logger=False, log_every_n_steps: int = 10,
                  **stage_settings: object) -> tuple[L.Trainer, StepMetrics]:
    """The `trainer` group's `_target_`: `instantiate(cfg.trainer, ckpt_dir=..., logger=..., log_every_n_steps=...)`.

    `logger` (a Lightning logger or False) and `log_every_n_steps` come from the `logger` group
    (stratos/distill/loggers.py), which is not part of the stage hash. The group's other keys
    (`stage_settings`: lr, batch_size, weight_decay, warmup_steps, num_threads, num_workers,
    group_by_length, length_slices) configure the module and the loaders (stratos/distill/fit.py).
    """
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="step_{step:06d}", auto_insert_metric_name=False,
                           every_n_train_steps=int(checkpoint_every_n_steps), save_last=True, save_top_k=1,
                           monitor=None)
    stats = StepMetrics()
    callbacks = [ckpt, stats, *([StepProgressBar()] if progress_bar else [])]
    val_every = min(int(val_every_n_steps), int(max_steps))
    trainer = L.Trainer(
        accelerator=accelerator, devices=int(devices), strategy=distributed, precision=precision,
        max_steps=int(max_steps), max_epochs=-1,
        max_time={"minutes": float(max_minutes)} if float(max_minutes) > 0 else None,
        val_check_interval=val_every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        gradient_clip_val=float(grad_clip) or None, logger=logger,
        enable_progress_bar=bool(progress_bar), enable_model_summary=False, default_root_dir=ckpt_dir,
        log_every_n_steps=int(log_every_n_steps), deterministic=False,
        **trainer_kwargs(callbacks),  # preemption checkpoint + requeue, resumable data order
    )
    return trainer, stats


def lightning_precisions() -> list[str]:
    """The precision names this Lightning accepts, read from its own type (`_PRECISION_INPUT`)."""
    import typing

    from lightning.fabric.connector import _PRECISION_INPUT

    def leaves(t) -> list:
        args = typing.get_args(t)
        return [x for a in args for x in (leaves(a) if typing.get_args(a) else [a])] if args else [t]

    return list(dict.fromkeys(str(v) for v in leaves(_PRECISION_INPUT)))


def validate_trainer(tr, will_train: bool = True) -> None:
    """Range checks of the `trainer` group that its types cannot express (UserError, one line)."""
    from stratos.errors import check_values

    precisions = lightning_precisions()
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
        # checked by name even when nothing trains (a plan-only run): the config is reused for the real run
        ("trainer.precision", tr.precision, str(tr.precision) in precisions, "one of " + ", ".join(precisions)),
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
        # a value may come back as its package's name ('transformer-engine' -> transformer_engine)
        quoted = [k for k, v in settings.items() if len(str(v)) > 1 and str(v).lower() in text.replace("_", "-")]
        key = (named or quoted or ["accelerator"])[0]
        raise UserError(f"invalid value for 'trainer.{key}': {settings[key]!r} on this machine (trainer settings "
                        f"{settings}; Lightning says: {reason[:300]})") from None
