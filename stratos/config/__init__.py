"""Structured config: one dataclass per concern, stored in Hydra's ConfigStore as `base_<group>`.

Each YAML option in `conf/<group>/` lists its `base_<group>[_<kind>]` first in its defaults, so Hydra
type-checks it against the dataclass here; the dataclass owns every default and (in `choices`) every
closed set of values, and the YAML only overrides. Range checks the types cannot express live in
each group's owner module, next to its `_target_`; `stratos.checks.validate` dispatches to them.

Group -> schema module here -> owner (code) module:
  task        task.py       stratos/tasks/              teacher, student  models.py  stratos/models/
  strategy    strategy.py   stratos/distill/            trainer           infra.py   stratos/distill/trainer.py
  deploy      deploy.py     stratos/export/             serve             serve.py   stratos/serve/
  servers     servers.py    stratos/plan/cost.py        planner, constraints  planner.py  stratos/plan/planner.py
  logger      logger.py     stratos/distill/loggers.py
  evaluate, pipeline, paths infra.py (stratos/evaluate/, stratos/pipeline.py)

This package is the foundation layer: it imports nothing from Stratos but `stratos.errors`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from stratos.config.choices import *  # noqa: F401,F403  (re-exported: stratos.config.<Enum>)
from stratos.config.servers import ServersConfig, SlurmConfig  # noqa: F401
from stratos.config.deploy import DeployConfig, VllmConfig  # noqa: F401
from stratos.config.infra import EvaluateConfig, PathsConfig, PipelineConfig, TrainerConfig  # noqa: F401
from stratos.config.logger import (  # noqa: F401
    CSVLoggerConfig, LoggerConfig, MLFlowLoggerConfig, TensorBoardLoggerConfig, WandbLoggerConfig)
from stratos.config.models import (  # noqa: F401
    ArchConfig, EngineTeacherConfig, HFTeacherConfig, ModelCard, OpenAITeacherConfig, PeftConfig, StudentConfig,
    TeacherConfig)
from stratos.config.planner import ConstraintsConfig, PlannerConfig  # noqa: F401
from stratos.config.serve import ServeSettings  # noqa: F401
from stratos.config.strategy import (  # noqa: F401
    AlignmentConfig, CrossTokenizerConfig, InjectionConfig, OnPolicyConfig, StrategyConfig)
from stratos.config.task import MahjongTaskConfig, MathTaskConfig, TaskConfig  # noqa: F401
from stratos.config.teachers import RouteConfig  # noqa: F401


# ---------------------------------------------------------------- where the YAML lives
# The one locator of conf/: the package `stratos.conf` (the top-level conf/ folder, linked into the
# package and shipped in the wheel as package data), so any install, editable or not, finds it.
CONFIG_PACKAGE = "stratos.conf"
CONFIG_PATH = f"pkg://{CONFIG_PACKAGE}"  # Hydra search path: @hydra.main(config_path=CONFIG_PATH)


def conf_files():
    """The shipped conf/ folder as an importlib.resources Traversable (`/ "teacher" / "x.yaml"`)."""
    from importlib.resources import files

    return files(CONFIG_PACKAGE)


CloudConfig = ServersConfig  # deprecated name (one release): the `cloud` group is now `servers`


@dataclass
class StratosConfig:
    servers: ServersConfig = MISSING
    teacher: TeacherConfig = MISSING
    teachers: dict[str, Any] = field(default_factory=dict)  # multi-teacher: id -> a teacher option (config/teachers.py)
    route: RouteConfig = field(default_factory=RouteConfig)  # multi-teacher: which row goes to which teacher
    student: StudentConfig = MISSING
    strategy: StrategyConfig = MISSING
    deploy: DeployConfig = MISSING
    serve: ServeSettings = field(default_factory=ServeSettings)  # python -m stratos.serve uses the same dataclass
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    task: Any = None  # added with +task=<name>
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = MISSING
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    exp_name: str = "default"


def teacher_label(name: Any, teachers: Any) -> str:
    """`exp_name`'s teacher part: the teacher's name, or with several teachers their ids joined by `+` (so a
    multi-teacher run never lands in the directory of the single-teacher run it would otherwise be named after)."""
    return "+".join(str(k) for k in teachers) if teachers else str(name)


# registered on import: every process that reads a Stratos config (CLI, tests, submitit jobs) imports this package
OmegaConf.register_new_resolver("teacher_label", teacher_label, replace=True)


def register_configs() -> None:
    """Store every schema as `base_<group>[_<kind>]`; YAML options list one first in their defaults."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=StratosConfig)
    cs.store(group="servers", name="base_servers", node=ServersConfig)
    cs.store(group="teacher", name="base_teacher", node=TeacherConfig)
    cs.store(group="teacher", name="base_teacher_engine", node=EngineTeacherConfig)
    cs.store(group="teacher", name="base_teacher_hf", node=HFTeacherConfig)
    cs.store(group="teacher", name="base_teacher_openai", node=OpenAITeacherConfig)
    cs.store(group="student", name="base_student", node=StudentConfig)
    cs.store(group="strategy", name="base_strategy", node=StrategyConfig)
    cs.store(group="deploy", name="base_deploy", node=DeployConfig)
    cs.store(group="trainer", name="base_trainer", node=TrainerConfig)
    cs.store(group="logger", name="base_logger", node=LoggerConfig)
    cs.store(group="logger", name="base_logger_csv", node=CSVLoggerConfig)
    cs.store(group="logger", name="base_logger_tensorboard", node=TensorBoardLoggerConfig)
    cs.store(group="logger", name="base_logger_mlflow", node=MLFlowLoggerConfig)
    cs.store(group="logger", name="base_logger_wandb", node=WandbLoggerConfig)
    cs.store(group="task", name="base_task", node=TaskConfig)
    cs.store(group="task", name="base_task_mahjong", node=MahjongTaskConfig)
    cs.store(group="task", name="base_task_math", node=MathTaskConfig)


# ---------------------------------------------------------------- deprecated keys (one release)
DEPRECATED_KEYS = {  # old key -> new key
    **{f"deploy.{k}": f"serve.{k}" for k in ("host", "port", "backend", "api_key_env", "max_tokens",
                                             "max_concurrency", "max_queue", "max_body_bytes")},
    "deploy.serve": "serve.enabled",
    **{f"deploy.{k}": f"constraints.{k}" for k in ("budget_usd", "deadline_h", "latency_slo_ms", "min_accuracy",
                                                   "qps")},
    "trainer.strategy": "trainer.distributed",  # Lightning's strategy; `strategy` is the distillation group
}


def move_deprecated_keys(cfg: DictConfig) -> list[str]:
    """Move values set under an old key to its new key (warning once each); returns the old keys moved."""
    moved = []
    for old, new in DEPRECATED_KEYS.items():
        value = OmegaConf.select(cfg, old, default=None)
        if value is None:
            continue
        print(f"stratos: warning: '{old}' is deprecated and will be removed in the next release; use '{new}'",
              file=sys.stderr)
        OmegaConf.update(cfg, new, value, merge=False)
        OmegaConf.update(cfg, old, None, merge=False)  # the export stage's hash stays that of the new layout
        moved.append(old)
    return moved


def local_path_exists(value: Any) -> bool:
    """False only for a local filesystem path that does not exist (hub ids and URLs pass)."""
    if not value or "://" in str(value) or not str(value).startswith(("/", "./", "../", "~")):
        return True
    return os.path.exists(os.path.expanduser(str(value)))
