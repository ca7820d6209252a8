"""Tasks: what a student learns (`conf/task/*.yaml`, added with `+task=NAME`).

A task turns its config into rows, writes prompts and verified rationales, and grades model text
(the `Task` protocol in `stratos.tasks.base`). Every stage that needs the task builds it here, from
its own config group, so no stage imports another stage's module to get one.
"""

from __future__ import annotations

from typing import Any

from stratos.tasks.base import ANSWER_PREFIX, Task

__all__ = ["ANSWER_PREFIX", "Task", "build_task"]


def build_task(task_cfg: Any) -> Task:
    """The task object for a `task` config group (its `_target_`), e.g. `build_task(cfg.task)`."""
    from hydra.utils import instantiate

    return instantiate(task_cfg, _convert_="all")
