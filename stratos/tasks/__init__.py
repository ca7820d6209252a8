"""Tasks: what a student learns (`conf/task/*.yaml`, added with `+task=NAME`).

A task turns its config into rows, writes prompts and verified rationales, and grades model text
(the `Task` protocol in `stratos.tasks.base`). Every stage that needs the task builds it here, from
its own config group, so no stage imports another stage's module to get one.
"""

from __future__ import annotations

from typing import Any

from stratos.tasks.base import ANSWER_PREFIX, Task, bucket_order

__all__ = ["ANSWER_PREFIX", "Task", "bucket_order", "build_task", "validate_task"]


def build_task(task_cfg: Any) -> Task:
    """The task object for a `task` config group (its `_target_`), e.g. `build_task(cfg.task)`."""
    from hydra.utils import instantiate

    return instantiate(task_cfg, _convert_="all")


def validate_task(task_cfg: Any) -> None:
    """The task group's checks: its data source exists, and the task's own constructor accepts the
    config (each task validates its fields where it uses them; building one synthesises nothing)."""
    from stratos.config import local_path_exists
    from stratos.errors import bad_value, find_user_error

    source = task_cfg.get("source")
    if not local_path_exists(source):
        raise bad_value("task.source", source, "an existing path, a hub id or an fsspec URL")
    try:
        build_task(task_cfg)
    except Exception as e:  # instantiate wraps the task's own UserError
        err = find_user_error(e)
        if err is None:
            raise
        raise err from None
