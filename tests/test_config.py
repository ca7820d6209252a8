"""Every group option composes against its schema; bad values give one-line UserErrors."""

from __future__ import annotations

import pathlib

import pytest
from omegaconf import OmegaConf

from stratos.cli import CONF_DIR
from stratos.config import validate
from stratos.errors import UserError
from tests.conftest import compose_cfg

GROUPS = ["cloud", "teacher", "student", "strategy", "deploy", "trainer", "debug", "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (pathlib.Path(CONF_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes(group, option, tmp_path):
    task = "+task=gsm8k" if option.startswith(("gsm8k", "aime")) else "+task=mahjong"
    cfg = compose_cfg([task, f"{group}={option}"], tmp_path)
    if group not in ("debug", "experiment"):  # those are @package _global_ overlays
        assert cfg[group] is not None
    # every value that is set resolves (no dangling interpolation); ??? marks a required user value
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


@pytest.mark.parametrize("task", options("task"))
def test_every_task_composes_and_validates(task, tmp_path):
    cfg = compose_cfg([f"+task={task}"], tmp_path)
    validate(cfg)
    assert cfg.task.name


def test_defaults_are_the_offline_ones(tmp_path):
    cfg = compose_cfg(["+task=mahjong"], tmp_path)
    assert (cfg.teacher.name, cfg.student.name, cfg.strategy.name, cfg.deploy.name) == (
        "task_engine", "tiny_llama", "auto", "onnx")
    assert cfg.student.name_or_path is None  # built from config, tokenizer trained locally


@pytest.mark.parametrize("override,key,allowed", [
    ("deploy.budget_usd=-5", "deploy.budget_usd", "dollars > 0"),
    ("trainer.max_steps=0", "trainer.max_steps", "an integer > 0"),
    ("trainer.length_slices=-1", "trainer.length_slices", "an integer >= 0"),
    ("task.variant=hongkong", "task.variant", "basic, riichi"),
    ("task.nontenpai_rate=1.5", "task.nontenpai_rate", "0 <= rate < 1"),
    ("strategy.alignment.kd_weight=2", "strategy.alignment.kd_weight", "0 <= weight <= 1"),
    ("strategy.injection.corpus_weight=1", "strategy.injection.corpus_weight", "0 <= weight < 1"),
    ("strategy.injection.corpus_window=-4", "strategy.injection.corpus_window", "an integer >= 0"),
    ("pipeline.stages=[plan,train]", "pipeline.stages", "a non-empty list"),
    ("student.peft.method=qlora", "student.peft.method", "none, lora"),
])
def test_bad_values_name_key_value_and_allowed(override, key, allowed, tmp_path):
    cfg = compose_cfg(["+task=mahjong", override], tmp_path)
    with pytest.raises(UserError) as e:
        validate(cfg)
    msg = str(e.value)
    assert key in msg and allowed in msg and "\n" not in msg


def test_missing_task_is_a_user_error(tmp_path):
    cfg = compose_cfg([], tmp_path)
    with pytest.raises(UserError, match=r"\+task="):
        validate(cfg)
