"""The `logger` group's owner: build the Lightning logger of the distill stage, and check it at start-up.

Each option in conf/logger/ names a Lightning logger class as `_target_` (typed by stratos/config/logger.py);
`build_logger` instantiates it with `save_dir` inside the distill stage directory. What it records: the
module's `self.log` calls (train/loss and its parts, val/loss) and `trainer.StepMetrics` (train/lr,
train/tokens_per_s, the last step). The CSV logger's files are read back by `outputs.read_train_metrics`.

TensorBoard, MLflow and W&B are optional packages; Lightning would only fail on them when the Trainer
is built, minutes into a run, so `validate_logger` names the missing package before any work.
"""

from __future__ import annotations

import importlib
import importlib.util
import posixpath

from omegaconf import DictConfig, OmegaConf

from stratos.config.logger import STRATOS_KEYS
from stratos.errors import UserError, check_values

# Lightning logger class -> (modules any one of which it needs, what to `pip install`)
PACKAGES = {
    "TensorBoardLogger": (("tensorboard", "tensorboardX"), "tensorboard"),
    "MLFlowLogger": (("mlflow",), "mlflow"),
    "WandbLogger": (("wandb",), "wandb"),
}


def _inside(path: str) -> bool:
    """A relative path that stays inside the directory it is relative to."""
    norm = posixpath.normpath(str(path))
    return bool(path) and "://" not in str(path) and not norm.startswith(("/", "..")) and norm != "."


def validate_logger(lg: DictConfig, will_train: bool = True) -> None:
    """Range checks, then (when the distill stage will run) that the logger's package is installed."""
    check_values([
        ("logger.log_every_n_steps", lg.log_every_n_steps, int(lg.log_every_n_steps) > 0, "an integer > 0"),
        ("logger.save_dir", lg.save_dir, _inside(lg.save_dir),
         "a relative path inside the distill stage directory, e.g. logs"),
    ])
    target = lg.get("_target_")
    if not target or not will_train:
        return
    cls = str(target).rsplit(".", 1)[-1]
    modules, pip = PACKAGES.get(cls, ((), ""))
    if modules and not any(importlib.util.find_spec(m) for m in modules):
        raise UserError(f"invalid value for 'logger': {cls} needs the {' or '.join(modules)} package, which is not "
                        f"installed (pip install {pip}; or logger=csv, logger=none)")


def check_logger_class(lg: DictConfig) -> None:
    """The logger's `_target_` imports and names a class (imports Lightning: run after the cheap checks)."""
    target = lg.get("_target_")
    if not target:
        return
    module, _, name = str(target).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None) if module else None
    except (ImportError, AttributeError):
        found = None
    if found is None:
        raise UserError(f"invalid value for 'logger._target_': {target!r} (allowed: an importable Lightning logger "
                        f"class, e.g. lightning.pytorch.loggers.CSVLogger)")


def build_logger(lg: DictConfig, save_dir: str | None):
    """The configured Lightning logger writing under `save_dir` (a local directory), or False (logger=none)."""
    from hydra.utils import instantiate

    if not lg.get("_target_"):
        return False
    kwargs = {k: v for k, v in OmegaConf.to_container(lg, resolve=True).items() if k not in STRATOS_KEYS}
    kwargs["save_dir"] = save_dir
    return instantiate(kwargs)


def run_params(cfg: DictConfig) -> dict:
    """What the logger records as the run's hyperparameters: the config keys the distill stage hashes, + task."""
    keys = ("task", "teacher", "student", "strategy", "trainer", "seed", "exp_name")
    if cfg.get("teachers"):  # several teachers: they and their route enter the distill hash too
        keys += ("teachers", "route")
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig) else cfg[k]
            for k in keys if k in cfg}
