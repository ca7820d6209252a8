"""`planner` and `constraints` (owner: stratos/plan/planner.py): the search and the user's limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from stratos.config.choices import SearchMethod, Selection


@dataclass
class ConstraintsConfig:
    """The user's limits, enforced by the planner (stratos/plan/planner.py)."""

    budget_usd: float = 100.0  # training budget: teacher tokens + GPU hours
    # training wall time; the plan turns it into steps for the chosen student, and trainer.max_minutes stops training
    # on time whatever the estimate. The default fits the 10-minute budget for the whole default run on 2 CPU
    # cores (plan, data, at most 8.4 min of training, evaluate, export: under 9 min even when training runs the whole
    # deadline); on the flagship task steps are what buys accuracy (docs/evidence.md)
    deadline_h: float = 0.14
    latency_slo_ms: float = 200.0  # per output token, p50, served
    min_accuracy: float = 0.0
    qps: float = 1.0  # serving load the chosen server must sustain


@dataclass
class PlannerConfig:
    # execute the plan: the later stages run with the plan's choices wherever the user pinned nothing
    # (stratos/plan/execute.py); false = the plan is advice and the config runs as composed
    execute: bool = True
    # decisions the user fixed (the CLI fills this from the command line and the config files chosen
    # there: teacher, student, strategy, server, trainer.max_steps, ...); the plan searches only the rest
    pinned: list[str] = field(default_factory=list)
    # a candidate that cannot train all train_tokens before constraints.deadline_h trains what fits (its
    # predicted accuracy pays for it) instead of being infeasible
    train_to_deadline: bool = True
    teachers: list[str] = field(default_factory=list)  # conf/teacher options to consider; empty => all
    students: list[str] = field(default_factory=list)  # conf/student options to consider; empty => all
    strategies: list[str] = field(default_factory=lambda: ["alignment", "injection"])
    train_tokens: float = 2.0e7
    # mean training tokens per example (prompt + target) per task, for steps = tokens / (batch x this),
    # until measured runs of the same student replace it (stratos/plan/calibration.py); others: 128.
    # mahjong: the default data under tiny_llama's 384-token BPE measured 42.4 (2026-12-06; 56 before left a
    # fresh machine's default run a quarter short of its deadline)
    example_tokens: dict[str, float] = field(default_factory=lambda: {"mahjong": 42.0, "gsm8k": 128.0,
                                                                      "aime": 128.0})
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
    # training sequences per device per step; with several values the plan chooses one and the run uses it
    micro_batch: list[int] = field(default_factory=lambda: [8])
    gpus: list[int] = field(default_factory=list)  # GPUs used per node; empty => all of the node
    # shares of the training budget (the tokens that fit before the deadline) to consider: [1.0] trains to the
    # deadline; e.g. [0.25, 0.5, 1.0] lets the plan trade accuracy for training time and cost
    train_shares: list[float] = field(default_factory=lambda: [1.0])
    search: SearchMethod = SearchMethod.auto
    enumerate_limit: int = 2_000_000
    pop_size: int = 200
    generations: int = 150
    log_scale: bool = True  # deployment score normalises latency, time and cost in log10
    front_max: int = 1000  # front points written to plan.json (best by score first)
    seed: int = 0  # NSGA and synthetic catalogs (kept here so the plan stage's config hash covers it)
