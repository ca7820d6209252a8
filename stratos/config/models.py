"""`teacher` and `student` groups (owner: stratos/models/). Each teacher kind has its own schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from stratos.config.choices import ArchFamily, PeftMethod, ScoreApi, TeacherKind, TokenizerFrom


@dataclass
class ModelCard:
    """What the planner knows about a model before loading it."""

    params_b: float = 0.0  # parameters, billions
    layers: int = 0
    hidden: int = 0
    heads: int = 0
    kv_heads: int = 0
    vocab: int = 0
    context: int = 2048
    tokenizer_family: str = "unknown"  # same family => logit KD allowed
    chat_template: bool = False
    licence: str = "unknown"
    prior_scores: dict[str, float] = field(default_factory=dict)  # task -> accuracy in [0, 1]


@dataclass
class TeacherConfig:
    """What every teacher has; each kind's options extend one of the three schemas below."""

    _target_: str = MISSING
    name: str = MISSING
    kind: TeacherKind = MISSING
    max_new_tokens: int = 256
    temperature: float = 0.0
    card: ModelCard = field(default_factory=ModelCard)


@dataclass
class EngineTeacherConfig(TeacherConfig):
    """The task's own verified solver (stratos/models/teacher.py: EngineTeacher); no weights."""

    kind: TeacherKind = TeacherKind.engine


@dataclass
class HFTeacherConfig(TeacherConfig):
    """White-box weights (stratos/models/teacher.py: HFTeacher): text, logits, hidden states."""

    kind: TeacherKind = TeacherKind.hf
    name_or_path: str = MISSING  # hub id or local checkpoint directory
    dtype: str = "float32"


@dataclass
class OpenAITeacherConfig(TeacherConfig):
    """A black-box endpoint (stratos/models/openai_teacher.py: OpenAITeacher)."""

    kind: TeacherKind = TeacherKind.openai
    base_url: str = MISSING  # e.g. http://127.0.0.1:8000/v1
    model: str = MISSING  # the served model's name
    api_key_env: str = "OPENAI_API_KEY"  # env var holding the key (never the key itself)
    top_logprobs: int = 0
    concurrency: int = 4
    max_retries: int = 5
    timeout_s: float = 60.0
    backoff_base_s: float = 0.5  # retry r waits ~U(c/2, c), c = min(backoff_max_s, base * 2^r) ...
    backoff_max_s: float = 30.0  # ... unless the server sent Retry-After (honoured)
    cache_dir: Optional[str] = "${paths.cache}"  # response cache (fsspec); null = no cache
    progress_every_s: float = 10.0  # progress log line period during long runs
    # on-policy KD (strategy.alignment.on_policy, scorer logprobs): the server scores the student's own tokens
    score_api: ScoreApi = ScoreApi.auto  # how to ask for log-probs of given tokens (auto: probed once)
    score_top_logprobs: int = 20  # top-k per scored position (vLLM's --max-logprobs default is 20; OpenAI's 5)


@dataclass
class ArchConfig:
    """Architecture for a student built from config (no download)."""

    family: ArchFamily = ArchFamily.llama
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 4
    intermediate: int = 512
    max_position: int = 512


@dataclass
class PeftConfig:
    method: PeftMethod = PeftMethod.none
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class StudentConfig:
    _target_: str = MISSING
    name: str = MISSING
    name_or_path: Optional[str] = None  # None => build from `arch` with a locally trained tokenizer
    arch: ArchConfig = field(default_factory=ArchConfig)
    tokenizer_vocab: int = 384  # size of the locally trained BPE (only when name_or_path is None)
    tokenizer_from: TokenizerFrom = TokenizerFrom.auto  # built students only
    dtype: str = "float32"
    peft: PeftConfig = field(default_factory=PeftConfig)
    card: ModelCard = field(default_factory=ModelCard)
