"""`teachers` + `route` nodes (owner: stratos/models/teachers.py, routing in stratos/distill/routing.py).

Several teachers, each composed from a `conf/teacher/` option under its own id:

    +teacher@teachers.low=tiny_teacher teachers.low.name_or_path=DIR_A \
    +teacher@teachers.high=tiny_teacher teachers.high.name_or_path=DIR_B route.by=auto

`teachers` stays `{}` for a single-teacher run (the `teacher` group), and then neither node enters the distill
stage's hash, so every existing run keeps its hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from stratos.config.choices import RouteBy


@dataclass
class RouteConfig:
    by: RouteBy = RouteBy.auto
    column: str = "teacher_id"  # by=column: the row field naming the row's teacher id
    slices: dict[Any, str] = field(default_factory=dict)  # by=slice: task slice ("3" or range "0-2") -> teacher id
    default: Optional[str] = None  # by=slice|column: teacher id of rows no rule names (None: such a row is an error)
    probe_n: int = 16  # by=auto: held-out rows probed per slice and teacher
    tolerance: float = 0.0  # by=auto: a slice goes to the cheapest teacher (card.params_b) within this of the best
    # by=auto: USD of teacher work the training rows may cost (None: no limit); the most expected correct teacher
    # answers within it (stratos/distill/route_budget.py); with a tolerance, "cheapest" is then in USD
    budget_usd: Optional[float] = None
    # teacher id -> USD per million of its tokens (default: hf by compute on the run's server, openai at
    # servers.api_usd_per_mtok, the rules engine free)
    usd_per_mtok: dict[str, float] = field(default_factory=dict)
