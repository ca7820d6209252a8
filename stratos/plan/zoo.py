"""The model zoo: every teacher and student option in conf/, as model cards in numpy columns.

The planner compares models it has not loaded, so it reads the YAML options directly
(`OmegaConf.load` of `conf/teacher/*.yaml` and `conf/student/*.yaml`, merged onto
`TeacherConfig` / `StudentConfig`) and keeps what the estimators need: size, shape, vocabulary,
context, tokenizer family and prior accuracy per task. The currently composed `cfg.teacher`
and `cfg.student` replace their file versions, so command-line overrides count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from stratos.config import (EngineTeacherConfig, HFTeacherConfig, OpenAITeacherConfig, StudentConfig, TeacherConfig,
                            conf_files)
from stratos.errors import UserError


TEACHER_SCHEMAS = {"engine": EngineTeacherConfig, "hf": HFTeacherConfig, "openai": OpenAITeacherConfig}


def option_names(group: str) -> list[str]:
    d = conf_files() / group
    return sorted(p.name[: -len(".yaml")] for p in d.iterdir() if p.name.endswith(".yaml")) if d.is_dir() else []


def load_option(group: str, name: str) -> DictConfig:
    """One option merged onto its dataclass (the `defaults` list is Hydra's, not data)."""
    raw = OmegaConf.create((conf_files() / group / f"{name}.yaml").read_text())
    raw.pop("defaults", None)
    schema = TEACHER_SCHEMAS.get(str(raw.get("kind")), TeacherConfig) if group == "teacher" else StudentConfig
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), raw)
    except Exception as e:  # omegaconf validation errors: report which file
        raise UserError(f"invalid option conf/{group}/{name}.yaml: {str(e).splitlines()[0]}") from None


@dataclass
class ModelEntry:
    """What the planner knows about one model, from its card (sizes in parameters, not billions)."""

    name: str
    kind: str  # teacher: engine | hf | openai; student: hf
    params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    vocab: int
    context: int
    tokenizer_family: str
    chat_template: bool
    licence: str
    prior_scores: dict[str, float] = field(default_factory=dict)
    lora_rank: int = 0  # students: 0 = full fine-tuning (peft.method none), else the LoRA rank
    lora_targets: int = 2  # students: LoRA-adapted projections per layer
    top_logprobs: int = 0  # openai teachers: top-k log-probs offered per token
    unset: list[str] = field(default_factory=list)  # required keys still '???' (the user must set them to run it)
    from_config: bool = False  # students: built from `arch` (trained from scratch) rather than pretrained weights
    config: Any = None  # the option's composed config (runnable checks read it)

    @property
    def kv_dim(self) -> int:
        """Width of one K (or V) projection: kv_heads * head_dim."""
        return self.kv_heads * (self.hidden // max(1, self.heads)) if self.heads else 0


def arch_params(vocab: int, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int,
                tied: bool = True) -> float:
    r"""Parameters of a Llama-style decoder built from config.

    $$ P = V h (1 + [\text{untied}]) + L\,(2h^2 + 2 h d_{kv} + 3 h d_{ff} + 2h) + h $$
    (q and o are h x h, k and v are h x d_kv, the SwiGLU MLP has three h x d_ff matrices, two RMSNorms
    per layer and a final one.)
    """
    d_kv = kv_heads * (hidden // max(1, heads))
    emb = vocab * hidden * (1 if tied else 2)
    return float(emb + layers * (2 * hidden * hidden + 2 * hidden * d_kv + 3 * hidden * intermediate + 2 * hidden)
                 + hidden)


def entry_from_cfg(c: DictConfig, role: str) -> ModelEntry:
    card = c.card
    kind = str(c.get("kind", "hf")) if role == "teacher" else "hf"
    params = float(card.params_b) * 1e9
    layers, hidden, heads, kv_heads, vocab = (int(card.layers), int(card.hidden), int(card.heads),
                                              int(card.kv_heads), int(card.vocab))
    if role == "student" and c.get("name_or_path") is None and "arch" in c:
        a = c.arch  # built from config: the arch is the truth, the card may be stale or empty
        vocab = int(c.tokenizer_vocab)
        layers, hidden, heads, kv_heads = int(a.layers), int(a.hidden), int(a.heads), int(a.kv_heads)
        params = arch_params(vocab, hidden, layers, heads, kv_heads, int(a.intermediate))
    from_config = role == "student" and c.get("name_or_path") is None and "arch" in c
    lora_rank, targets = 0, 2
    if role == "student":
        peft = c.peft
        lora_rank = int(peft.r) if str(peft.method) == "lora" else 0
        targets = len(peft.target_modules)
    return ModelEntry(
        name=str(c.name), kind=kind, params=params, layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads,
        vocab=vocab, context=int(card.context), tokenizer_family=str(card.tokenizer_family),
        chat_template=bool(card.chat_template), licence=str(card.licence),
        prior_scores={str(k): float(v) for k, v in (card.prior_scores or {}).items()},
        lora_rank=lora_rank, lora_targets=targets,
        top_logprobs=int(c.get("top_logprobs", 0) or 0) if role == "teacher" else 0,
        unset=[f"teacher.{k}" for k in REQUIRED.get(kind, ()) if role == "teacher" and _unset(c, k)],
        from_config=from_config, config=c,
    )


# Keys a teacher of each kind needs to run. YAML options mark them '???', but OmegaConf's merge keeps the
# schema's None under a '???', so "unset" means missing or None.
REQUIRED = {"hf": ("name_or_path",), "openai": ("base_url", "model")}


def _unset(c: DictConfig, key: str) -> bool:
    return key not in c or OmegaConf.is_missing(c, key) or c[key] is None


def _pick(group: str, wanted: list[str], current: DictConfig | None) -> list[ModelEntry]:
    available = option_names(group)
    cur_name = str(current.name) if current is not None and "name" in current else None
    names = list(wanted) if wanted else available
    if not wanted and cur_name and cur_name not in names:
        names.append(cur_name)
    unknown = [n for n in names if n not in available and n != cur_name]
    if unknown:
        raise UserError(f"invalid value for 'planner.{group}s': {unknown} (allowed: {', '.join(available)})")
    out = []
    for n in names:
        c = current if n == cur_name else load_option(group, n)
        out.append(entry_from_cfg(c, group))
    return out


@dataclass
class Zoo:
    teachers: list[ModelEntry]
    students: list[ModelEntry]

    def column(self, role: str, attr: str, dtype: Any = np.float64) -> np.ndarray:
        """(T,) or (U,) array of one card attribute."""
        rows = self.teachers if role == "teacher" else self.students
        return np.array([getattr(m, attr) for m in rows], dtype=dtype)


def build_zoo(cfg: DictConfig, pinned: frozenset[str] = frozenset()) -> Zoo:
    """Teachers and students named in `planner.teachers` / `planner.students` (empty = every option,
    plus the composed one when it is not a file). A pinned teacher or student is the only one."""
    teachers = ([entry_from_cfg(cfg.teacher, "teacher")] if "teacher" in pinned
                else _pick("teacher", list(cfg.planner.teachers), cfg.get("teacher")))
    students = ([entry_from_cfg(cfg.student, "student")] if "student" in pinned
                else _pick("student", list(cfg.planner.students), cfg.get("student")))
    if not teachers or not students:
        raise UserError("the planner found no teacher or no student options under conf/ "
                        "(allowed: set planner.teachers / planner.students to option names)")
    return Zoo(teachers, students)
