"""Infrastructure groups: `trainer` (owner: stratos/distill/trainer.py), `evaluate`, `pipeline`, `paths`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class TrainerConfig:
    """Lightning's Trainer (built by `_target_`) plus the optimiser and loader settings of the distill stage."""

    _target_: str = "stratos.distill.trainer.build_trainer"
    accelerator: str = "cpu"
    devices: int = 1
    # Lightning's distributed strategy: auto | ddp | fsdp | deepspeed | ... (Lightning's own engines). Named
    # `distributed` because `strategy` in Stratos is the distillation strategy (the `strategy` group).
    distributed: str = "auto"
    strategy: Optional[str] = None  # deprecated (one release): trainer.distributed
    precision: str = "32-true"
    max_steps: int = 1000
    max_minutes: float = 0.0  # >0: stop training after this wall time (checkpointed)
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    val_every_n_steps: int = 200
    checkpoint_every_n_steps: int = 200
    num_threads: int = 0  # 0 => torch default
    num_workers: int = 0
    group_by_length: bool = False  # batches of similar length: less padding, but skewed batches (see README)
    # forwards on <= N length-sorted slices of each batch: same batch, less padding computed (see README);
    # 0 = auto: 4 at 32-bit precision, 1 (off) under mixed precision, where it was measured to cost time
    length_slices: int = 0
    progress_bar: bool = True


@dataclass
class EvaluateConfig:
    batch_size: int = 64
    max_new_tokens: int = 0  # 0 => task default
    n_latency: int = 16  # answers timed one by one for latency per answer
    samples: int = 1  # k > 1: answer by the majority of k sampled completions (stratos/evaluate/vote.py); 1 = greedy
    temperature: float = 0.7  # sampling temperature when samples > 1 (latency figures stay greedy, batch 1)


@dataclass
class PipelineConfig:
    stages: list[str] = field(default_factory=lambda: ["plan", "data", "distill", "evaluate", "export", "report"])
    resume: bool = True  # reuse finished stages whose config hash matches


@dataclass
class PathsConfig:
    output_root: str = "outputs"
    cache: str = "${paths.output_root}/cache"  # shared, content-addressed (teacher logits, API calls)
