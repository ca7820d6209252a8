"""`planner` and `constraints` (owner: stratos/plan/planner.py): the search and the user's limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from stratos.config.choices import SearchMethod, Selection


@dataclass
class ConstraintsConfig:
    """The user's limits, enforced by the planner (stratos/plan/planner.py)."""

    budget_usd: float = 100.0  # training budget: teacher tokens + GPU hours
    deadline_h: float = 24.0  # training wall time
    latency_slo_ms: float = 200.0  # per output token, p50, served
    min_accuracy: float = 0.0
    qps: float = 1.0  # serving load the chosen server must sustain


@dataclass
class PlannerConfig:
    teachers: list[str] = field(default_factory=list)  # conf/teacher options to consider; empty => all
    students: list[str] = field(default_factory=list)  # conf/student options to consider; empty => all
    strategies: list[str] = field(default_factory=lambda: ["alignment", "injection"])
    train_tokens: float = 2.0e7
    selection: Selection = Selection.score
    weights: dict[str, float] = field(
        default_factory=lambda: {"accuracy": 0.4, "latency": 0.2, "train_time": 0.1, "cost": 0.3}
    )
    history: Optional[str] = "${paths.cache}/planner_history.json"  # calibration history (fsspec); null = off
    # workload shape (tokens per sequence) the estimators use
    seq_len: int = 512  # training sequence length (prompt + rationale)
    prompt_tokens: int = 128  # serving: prompt length
    output_tokens: int = 256  # serving: answer length
    data_epochs: float = 3.0  # train_tokens / data_epochs = unique tokens the teacher writes (synthesis)
    rejection_samples: float = 2.0  # sequence-level KD: teacher samples per kept rationale
    # extra decision variables; more than one value each multiplies the search space
    lora_ranks: list[int] = field(default_factory=list)  # 0 = full fine-tuning; empty => each student's peft
    quant_bits: list[int] = field(default_factory=lambda: [16])  # serving weight precision: 16 | 8 | 4
    micro_batch: list[int] = field(default_factory=lambda: [8])  # training sequences per GPU per step
    gpus: list[int] = field(default_factory=list)  # GPUs used per node; empty => all of the node
    search: SearchMethod = SearchMethod.auto
    enumerate_limit: int = 2_000_000
    pop_size: int = 200
    generations: int = 150
    log_scale: bool = True  # deployment score normalises latency, time and cost in log10
    front_max: int = 1000  # front points written to plan.json (best by score first)
    seed: int = 0  # NSGA and synthetic catalogs (kept here so the plan stage's config hash covers it)
