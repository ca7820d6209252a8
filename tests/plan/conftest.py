"""Planner test configs, built from the structured schema and the real conf/ options (no Hydra run)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from stratos.config import ServersConfig, DeployConfig, StratosConfig, StrategyConfig, conf_files
from stratos.plan.zoo import load_option


def make_cfg(servers: str = "catalog", teacher: str = "mahjong_engine", student: str = "tiny_llama",
             strategy: str = "auto", task: str = "mahjong", **dotlist):
    """A composed-like config: the named conf/ options merged onto their dataclasses, plus overrides
    given as dotted keys with '__' for '.' (planner__teachers=[...])."""
    servers_raw = OmegaConf.create((conf_files() / "servers" / f"{servers}.yaml").read_text())
    servers_raw.pop("defaults", None)
    cfg = OmegaConf.structured(StratosConfig)
    cfg.servers = OmegaConf.merge(OmegaConf.structured(ServersConfig), servers_raw)
    cfg.teacher = load_option("teacher", teacher)
    cfg.student = load_option("student", student)
    cfg.strategy = OmegaConf.merge(OmegaConf.structured(StrategyConfig), {"_target_": "x", "name": strategy})
    cfg.deploy = OmegaConf.merge(OmegaConf.structured(DeployConfig), {"_target_": "x", "name": "onnx"})
    cfg.task = {"name": task}
    # the classic problem: a fixed amount of training work under a day's deadline (the CLI's default
    # deadline of 0.1 h sized for this machine, and training to it, are tested in test_deadline.py)
    cfg.constraints.deadline_h = 24.0
    cfg.planner.train_to_deadline = False
    cfg.planner.execute = False  # advice: the best plan whether or not it can run here (runnable: test_runnable.py)
    for k, v in dotlist.items():
        OmegaConf.update(cfg, k.replace("__", "."), v, merge=False)
    return cfg


@pytest.fixture
def cfg_factory():
    return make_cfg
