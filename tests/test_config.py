"""Every group option composes against its schema; bad values give one-line UserErrors."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from stratos.checks import validate
from stratos.config import conf_files
from stratos.errors import UserError
from tests.conftest import compose_cfg

GROUPS = ["servers", "teacher", "student", "strategy", "deploy", "trainer", "debug", "experiment"]


def options(group: str) -> list[str]:
    """Every option of `group`, including those in sub-folders (`experiment=kd_evidence/b_live_kd`)."""
    def walk(d, prefix=""):
        for p in d.iterdir():
            if p.is_dir() and not p.name.startswith("_"):
                yield from walk(p, f"{prefix}{p.name}/")
            elif p.name.endswith(".yaml"):
                yield prefix + p.name[: -len(".yaml")]
    d = conf_files() / group
    return sorted(walk(d)) if d.is_dir() else []


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
    ("constraints.budget_usd=-5", "constraints.budget_usd", "dollars > 0"),
    ("trainer.max_steps=0", "trainer.max_steps", "an integer > 0"),
    ("trainer.length_slices=-1", "trainer.length_slices", "an integer >= 0"),
    ("task.nontenpai_rate=1.5", "task.nontenpai_rate", "0 <= rate < 1"),
    ("strategy.alignment.kd_weight=2", "strategy.alignment.kd_weight", "0 <= weight <= 1"),
    ("strategy.injection.corpus_weight=1", "strategy.injection.corpus_weight", "0 <= weight < 1"),
    ("strategy.injection.corpus_window=-4", "strategy.injection.corpus_window", "an integer >= 0"),
    ("pipeline.stages=[plan,train]", "pipeline.stages", "a non-empty list"),
    ("student.arch.heads=3", "student.arch.heads", "a divisor of hidden"),
    ("deploy.threads=0", "deploy.threads", "an integer >= 1"),
    ("serve.port=70000", "port", "0..65535"),
    ("servers.min_availability=2", "servers.min_availability", "0 <= availability <= 1"),
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


@pytest.mark.parametrize("override,line", [
    ("task.variant=hongkong", "invalid value for 'task.variant': 'hongkong' (allowed: basic, riichi)"),
    ("student.peft.method=qlora", "invalid value for 'student.peft.method': 'qlora' (allowed: none, lora)"),
    ("strategy.alignment.loss=kl", "invalid value for 'strategy.alignment.loss': 'kl' (allowed: forward_kl, "),
    ("serve.backend=tensorrt", "invalid value for 'serve.backend': 'tensorrt' (allowed: auto, onnx, torch)"),
    ("trainer.max_steps=lots", "invalid value for 'trainer.max_steps': 'lots' (allowed: an integer)"),
])
def test_bad_choices_fail_at_composition_with_one_line(override, line, tmp_path):
    """Choices are Enums: Hydra refuses them while composing; the CLI prints `describe_config_error`."""
    from hydra.errors import ConfigCompositionException

    from stratos.errors import describe_config_error

    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg(["+task=mahjong", override], tmp_path)
    msg = describe_config_error(e.value)
    assert msg.startswith(line) and "\n" not in msg, msg


def test_each_teacher_kind_requires_its_own_keys(tmp_path):
    cfg = compose_cfg(["+task=mahjong", "teacher=openai_endpoint"], tmp_path)
    with pytest.raises(UserError, match=r"missing value for 'teacher.base_url'"):
        validate(cfg)
    cfg = compose_cfg(["+task=mahjong", "teacher=tiny_teacher"], tmp_path)
    with pytest.raises(UserError, match=r"missing value for 'teacher.name_or_path'"):
        validate(cfg)
    with pytest.raises(Exception, match="base_url"):  # an engine teacher has no endpoint keys at all
        compose_cfg(["+task=mahjong", "teacher.base_url=http://x/v1"], tmp_path)


def test_deprecated_deploy_keys_move_with_a_warning(tmp_path, capsys):
    cfg = compose_cfg(["+task=mahjong", "deploy.budget_usd=7", "deploy.port=0", "deploy.serve=true",
                       "trainer.strategy=auto"], tmp_path)
    validate(cfg)
    assert (cfg.constraints.budget_usd, cfg.serve.port, cfg.serve.enabled) == (7.0, 0, True)
    assert cfg.trainer.distributed == "auto" and cfg.trainer.strategy is None
    assert (cfg.deploy.budget_usd, cfg.deploy.port, cfg.deploy.serve) == (None, None, None)
    err = capsys.readouterr().err
    assert "'deploy.budget_usd' is deprecated" in err and "use 'constraints.budget_usd'" in err
    assert "use 'serve.enabled'" in err and "use 'trainer.distributed'" in err


def test_validate_dispatches_to_owner_modules_only():
    """checks.validate holds no range checks of its own: every check lives in the group's owner."""
    import inspect

    from stratos import checks

    src = inspect.getsource(checks.validate)
    assert "bad_value" not in src and "_check(" not in src


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_composes_and_validates(name, tmp_path):
    """Experiments (`# @package _global_` overlays) are runnable configs: with the teacher they need, each
    passes the whole validation pass."""
    assert options("experiment"), "conf/experiment/ holds no experiment"
    teacher = tmp_path / "teacher"  # a checkpoint directory as validation sees one (weights are checked first)
    teacher.mkdir()
    (teacher / "config.json").write_text("{}")
    needs_teacher = name.startswith("kd_evidence/")  # the KD conditions distill a white-box teacher you trained
    cfg = compose_cfg(["+task=mahjong", f"experiment={name}", *([f"teacher.name_or_path={teacher}"] if needs_teacher
                                                                 else [])], tmp_path)
    validate(cfg)
    assert cfg.teacher.name == ("tiny_teacher" if needs_teacher else "task_engine")
