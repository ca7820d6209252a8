"""One validation pass over the composed config, before any stage runs or any directory is made.

Types and choices (the Enums in stratos/config/choices.py) are checked by Hydra while it composes; the
range checks the types cannot express belong to each group's owner module, next to its
`_target_`, and `validate` only dispatches to them. It sits above the owners (stratos.config sits
below them), so no import cycle is needed to reach them. Raises UserError on the first bad value.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from stratos.config import move_deprecated_keys
from stratos.errors import UserError


def validate(cfg: DictConfig) -> None:
    """Move deprecated keys, then let each owner check its group (first bad value -> UserError)."""
    move_deprecated_keys(cfg)
    missing = min(OmegaConf.missing_keys(cfg), default=None)  # `???` values left unset, as dotted keys
    if missing:
        raise UserError(f"missing value for '{missing}' (allowed: set it, e.g. {missing}=...)")
    if cfg.get("task") is None:
        raise UserError("no task selected: add +task=<name> (choices: mahjong, gsm8k, aime)")
    # Cheap checks first, each owner imported only when its turn comes: a bad value is refused in about a
    # second, before torch, transformers or Lightning are imported (seconds each). The checks that ask a
    # library (Lightning builds a trainer; the hub is asked for weights) come last.
    from stratos.pipeline import stage_order, validate_pipeline
    from stratos.artifacts import check_writable

    validate_pipeline(cfg.pipeline)
    check_writable("paths.output_root", str(cfg.paths.output_root))
    check_writable("paths.cache", str(cfg.paths.cache))
    from stratos.tasks import validate_task

    validate_task(cfg.task)
    from stratos.models.teacher import validate_teacher

    validate_teacher(cfg.teacher)
    from stratos.models.teachers import validate_teachers

    validate_teachers(cfg)  # several teachers: each member, and the route naming them
    from stratos.models.student import validate_student

    validate_student(cfg.student)
    from stratos.distill.strategy import validate_strategy

    validate_strategy(cfg.strategy)
    from stratos.distill.on_policy import validate_on_policy

    validate_on_policy(cfg)  # strategy x teacher x task: can the teacher score the student's samples?
    will_train = "distill" in stage_order(cfg)
    from stratos.distill.loggers import validate_logger

    validate_logger(cfg.logger, will_train=will_train)
    from stratos.evaluate.vote import validate_evaluate

    validate_evaluate(cfg.evaluate)
    from stratos.export import validate_deploy

    validate_deploy(cfg.deploy)
    from stratos.plan.cost import validate_servers

    validate_servers(cfg.servers)
    from stratos.plan.planner import validate_planner

    validate_planner(cfg)
    from stratos.serve.launch import settings_from_config

    settings_from_config(cfg.serve)
    from stratos.distill.trainer import validate_trainer  # imports Lightning

    validate_trainer(cfg.trainer, will_train=will_train)
    if will_train:  # the logger class imports; every model the run loads is here or can be downloaded
        from stratos.distill.loggers import check_logger_class
        from stratos.models.weights import check_obtainable

        check_logger_class(cfg.logger)
        check_obtainable("student.name_or_path", cfg.student.get("name_or_path"))
        if cfg.teacher.kind == "hf" and not cfg.get("teachers"):
            check_obtainable("teacher.name_or_path", cfg.teacher.name_or_path)
        for tid, t in (cfg.get("teachers") or {}).items():
            if t.kind == "hf":
                check_obtainable(f"teachers.{tid}.name_or_path", t.name_or_path)
        from stratos.models.teachers import check_members_reachable

        check_members_reachable(cfg)
        from stratos.distill.on_policy import check_served_scorer

        check_served_scorer(cfg)  # on-policy KD with a served teacher: the server scores given tokens
