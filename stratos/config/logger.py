"""`logger` group (owner: stratos/distill/loggers.py): the Lightning logger that records the distill
stage's step metrics (train/loss, train/lr, train/ce, train/kd, ..., train/tokens_per_s, val/loss).

Each option names a Lightning logger class as `_target_`; every other field is passed to it, except the
Stratos keys in `STRATOS_KEYS`. `save_dir` is a path inside the distill stage directory, so a run's logs
live, and are wiped, with the stage that wrote them. Defaults never contact a server: MLflow writes a local
file store (`file:<run_dir>/distill/mlruns`), Weights & Biases runs offline.

A top-level group of its own, not part of `trainer`: the distill stage hashes `trainer`, and the logger
does not change the model, so switching it reuses a finished stage instead of retraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

STRATOS_KEYS = ("log_every_n_steps",)  # read by Stratos' trainer, not passed to the logger


@dataclass
class LoggerConfig:
    """What every option has; `_target_: null` (logger=none) records nothing."""

    _target_: Optional[str] = None
    save_dir: str = "logs"  # relative to the distill stage directory
    # Lightning's Trainer(log_every_n_steps); the last step is always logged as well (StepMetrics)
    log_every_n_steps: int = 10


@dataclass
class CSVLoggerConfig(LoggerConfig):
    """`<save_dir>/version_<N>/metrics.csv`, one version per launch (a resumed run adds one); the report reads it."""

    _target_: Optional[str] = "lightning.pytorch.loggers.CSVLogger"
    name: str = ""  # no experiment sub-folder: the stage directory already names the run


@dataclass
class TensorBoardLoggerConfig(LoggerConfig):
    """Event files for `tensorboard --logdir <run_dir>/distill/tensorboard` (needs tensorboard or tensorboardX)."""

    _target_: Optional[str] = "lightning.pytorch.loggers.TensorBoardLogger"
    save_dir: str = "tensorboard"
    name: str = ""
    default_hp_metric: bool = False
    log_graph: bool = False


@dataclass
class MLFlowLoggerConfig(LoggerConfig):
    """An MLflow run; with `tracking_uri: null` the store is the local folder `file:<distill dir>/<save_dir>`."""

    _target_: Optional[str] = "lightning.pytorch.loggers.MLFlowLogger"
    save_dir: str = "mlruns"
    experiment_name: str = "stratos"
    run_name: Optional[str] = None
    tracking_uri: Optional[str] = None  # e.g. http://host:5000 to log to a tracking server instead
    log_model: bool = False


@dataclass
class WandbLoggerConfig(LoggerConfig):
    """A Weights & Biases run, offline by default (`wandb sync <run_dir>/distill/wandb/...` uploads it later)."""

    _target_: Optional[str] = "lightning.pytorch.loggers.WandbLogger"
    save_dir: str = "wandb"
    project: str = "stratos"
    name: Optional[str] = None
    offline: bool = True
    log_model: bool = False
