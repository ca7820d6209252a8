"""What the export stage hands each deploy target (`conf/deploy/*.yaml` -> `build(job) -> metrics`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stratos.artifacts import StageContext


@dataclass
class ExportJob:
    ctx: StageContext  # where targets write (ctx.local_dir / ctx.write_json record outputs in the manifest)
    hf_dir: str  # the exported HF checkpoint (merged, tokenizer, generation config, chat template)
    name: str  # served model name
    questions: list[str] = field(default_factory=list)  # test prompts (plain text) for parity/benchmarks
    rows: list[dict] = field(default_factory=list)  # test rows (graded with `task` when given)
    task: Any = None  # stratos.tasks.base.Task or None
    max_new_tokens: int = 256  # the task's generation budget
    plan: dict = field(default_factory=dict)  # plan.json's "selected" ({} when the plan stage did not run)
    slurm: dict = field(default_factory=dict)  # cfg.servers.slurm (partition, account, qos, time_min)
    distill_outputs: dict = field(default_factory=dict)  # the distill manifest's outputs (adapter, base_model)
    student_name_or_path: str | None = None  # pretrained base of a LoRA student (hub id or path)
