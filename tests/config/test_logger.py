"""The `logger` group (stratos/config/logger.py): every option composes against its schema, the defaults
stay offline, and the choice of logger is not part of the distill stage hash."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from stratos.config import conf_files
from stratos.pipeline import stage_hash
from tests.conftest import compose_cfg

OPTIONS = sorted(p.name[: -len(".yaml")] for p in (conf_files() / "logger").iterdir() if p.name.endswith(".yaml"))
TARGETS = {"csv": "lightning.pytorch.loggers.CSVLogger", "tensorboard": "lightning.pytorch.loggers.TensorBoardLogger",
           "mlflow": "lightning.pytorch.loggers.MLFlowLogger", "wandb": "lightning.pytorch.loggers.WandbLogger",
           "none": None}


def test_the_options_are_the_documented_ones():
    assert OPTIONS == sorted(TARGETS)


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_composes_and_names_its_lightning_logger(option, tmp_path):
    cfg = compose_cfg(["+task=mahjong", f"logger={option}"], tmp_path)
    lg = OmegaConf.to_container(cfg.logger, resolve=True)  # every interpolation resolves
    assert lg["_target_"] == TARGETS[option]
    assert lg["log_every_n_steps"] == 10 and not lg["save_dir"].startswith("/")


def test_csv_is_the_default(tmp_path):
    assert compose_cfg(["+task=mahjong"], tmp_path).logger._target_ == TARGETS["csv"]


def test_defaults_contact_no_server(tmp_path):
    mlflow = compose_cfg(["+task=mahjong", "logger=mlflow"], tmp_path).logger
    assert mlflow.tracking_uri is None and mlflow.save_dir == "mlruns"  # -> file:<run_dir>/distill/mlruns
    assert compose_cfg(["+task=mahjong", "logger=wandb"], tmp_path).logger.offline is True


def test_an_unknown_logger_key_is_refused_while_composing(tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose_cfg(["+task=mahjong", "logger.flush_every=3"], tmp_path)


@pytest.mark.parametrize("change", ["logger=none", "logger=tensorboard", "logger=mlflow", "logger.log_every_n_steps=1"])
def test_the_logger_does_not_change_the_distill_stage_hash(change, tmp_path):
    base = compose_cfg(["+task=mahjong"], tmp_path)
    other = compose_cfg(["+task=mahjong", change], tmp_path)
    assert OmegaConf.to_container(base.logger) != OmegaConf.to_container(other.logger)
    assert stage_hash(other, "distill", {}) == stage_hash(base, "distill", {})
    # while a trainer value does change it (the check above could not pass by hashing nothing)
    assert stage_hash(compose_cfg(["+task=mahjong", "trainer.lr=0.1"], tmp_path), "distill", {}) != \
        stage_hash(base, "distill", {})
